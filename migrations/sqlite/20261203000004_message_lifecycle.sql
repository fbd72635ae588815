-- Message lifecycle (SPEC "Message lifecycle"): edits, deletes for me and for everyone,
-- replies and reactions, and their events in each user's resume log.
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
-- Deleted for everyone: a tombstone (content, media and links are gone).
ALTER TABLE messages ADD COLUMN deleted_at INTEGER;
-- No foreign key on purpose: a reply outlives its original (retention purges the older
-- message first), and then says that the original is gone.
ALTER TABLE messages ADD COLUMN reply_to_id TEXT;

CREATE TABLE message_reactions (
    message_id  TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    emoji       TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
) WITHOUT ROWID;
CREATE INDEX message_reactions_user ON message_reactions (user_id);

-- Deleted for me: the message stays for the other participant.
CREATE TABLE hidden_messages (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    message_id  TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    hidden_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, message_id)
) WITHOUT ROWID;
CREATE INDEX hidden_messages_message ON hidden_messages (message_id);

-- Edits, deletes and reaction changes in the per-user event log (positions from
-- event_heads, like messages and read_events). An edit is replayed with the message as it
-- is at replay time; the events of a purged message go with it.
CREATE TABLE message_events (
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('edited', 'deleted_me', 'deleted', 'reaction')),
    conversation_id  TEXT NOT NULL,
    message_id       TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    actor_id         TEXT NOT NULL,
    emoji            TEXT,
    added            INTEGER,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
CREATE INDEX message_events_message ON message_events (message_id);

-- SPEC "Message lifecycle" rate limits: edits and deletes share one budget.
INSERT INTO rate_limits (action, max_requests, period_seconds) VALUES
    ('edit_message', 30, 60),
    ('react', 60, 60),
    ('search', 30, 60)
ON CONFLICT (action) DO NOTHING;

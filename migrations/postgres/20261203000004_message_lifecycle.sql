-- Message lifecycle (SPEC "Message lifecycle"): edits, deletes for me and for everyone,
-- replies and reactions, and their events in each user's resume log.
ALTER TABLE messages
    ADD COLUMN edited_at   TIMESTAMPTZ,
    -- Deleted for everyone: a tombstone (content, media and links are gone).
    ADD COLUMN deleted_at  TIMESTAMPTZ,
    -- No foreign key on purpose: a reply outlives its original (retention purges the older
    -- message first), and then says that the original is gone.
    ADD COLUMN reply_to_id UUID;

CREATE TABLE message_reactions (
    message_id  UUID NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    emoji       TEXT NOT NULL,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);
CREATE INDEX message_reactions_user ON message_reactions (user_id);

-- Deleted for me: the message stays for the other participant.
CREATE TABLE hidden_messages (
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    message_id  UUID NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    hidden_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, message_id)
);
CREATE INDEX hidden_messages_message ON hidden_messages (message_id);

-- Edits, deletes and reaction changes in the per-user event log (positions from
-- event_heads, like messages and read_events). An edit is replayed with the message as it
-- is at replay time; the events of a purged message go with it.
CREATE TABLE message_events (
    user_id          UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq              BIGINT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('edited', 'deleted_me', 'deleted', 'reaction')),
    conversation_id  UUID NOT NULL,
    message_id       UUID NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    actor_id         UUID NOT NULL,
    emoji            TEXT,
    added            BOOLEAN,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX message_events_message ON message_events (message_id);

-- SPEC "Message lifecycle" rate limits: edits and deletes share one budget.
INSERT INTO rate_limits (action, max_requests, period_seconds) VALUES
    ('edit_message', 30, 60),
    ('react', 60, 60),
    ('search', 30, 60)
ON CONFLICT (action) DO NOTHING;

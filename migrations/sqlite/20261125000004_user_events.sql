-- Gap-free resume (`/chat/ws?since=SEQ`): every user has a log of the events that change
-- what they see (a message sent or received, a read ack, the other side's read update),
-- numbered 1, 2, 3, … per user. SQLite has one writer, so numbers commit in order.
CREATE TABLE event_heads (
    user_id  TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL
);

CREATE TABLE user_events (
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('message', 'read_ack', 'read_update')),
    conversation_id   TEXT NOT NULL,
    -- message events: the message (purging it removes the event)
    message_id        TEXT REFERENCES messages(id) ON DELETE CASCADE,
    -- read events
    reader_id         TEXT,
    up_to_message_id  TEXT,
    read_at           INTEGER,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
CREATE INDEX user_events_message ON user_events (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX user_events_read_created ON user_events (created_at) WHERE message_id IS NULL;

-- Gap-free resume (`/chat/ws?since=SEQ`): every user has a log of the events that change
-- what they see (a message sent or received, a read ack, the other side's read update),
-- numbered 1, 2, 3, … per user. The counter lives in its own table, not on `users`, so
-- presence writes never wait on sends. A send or read takes the conversation row lock
-- first and then the two counters in user-id order, which commits events of one user in
-- their sequence order: everything at or below a counter value read is committed.
CREATE TABLE event_heads (
    user_id  UUID PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    seq      BIGINT NOT NULL
);

CREATE TABLE user_events (
    user_id           UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('message', 'read_ack', 'read_update')),
    conversation_id   UUID NOT NULL,
    -- message events: the message (purging it removes the event)
    message_id        UUID REFERENCES messages(id) ON DELETE CASCADE,
    -- read events
    reader_id         UUID,
    up_to_message_id  UUID,
    read_at           TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX user_events_message ON user_events (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX user_events_read_created ON user_events (created_at) WHERE message_id IS NULL;

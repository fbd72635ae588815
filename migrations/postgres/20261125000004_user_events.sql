-- Gap-free resume (`/chat/ws?since=SEQ`): every user has a log of the events that change
-- what they see, numbered 1, 2, 3, … per user: a message they sent or received (its
-- position in each participant's log is stored on the message itself: sender_seq,
-- receiver_seq), a read ack, the other side's read update (read_events).
--
-- The counter lives in its own table, not on `users`, so presence writes never wait on
-- sends. A send or a read takes both participants' counters first, in user-id order, and
-- then the conversation row; a user's events therefore commit in their sequence order:
-- everything at or below a counter value read is committed.
CREATE TABLE event_heads (
    user_id  UUID PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    seq      BIGINT NOT NULL
);

-- Messages stored before this migration have no positions (NULL): they are history.
ALTER TABLE messages ADD COLUMN sender_seq BIGINT, ADD COLUMN receiver_seq BIGINT;
-- Also the index for "messages sent by" (purge, erasure): it replaces messages_sender.
CREATE UNIQUE INDEX messages_sender_seq ON messages (sender_id, sender_seq);
CREATE UNIQUE INDEX messages_receiver_seq ON messages (receiver_id, receiver_seq);
DROP INDEX messages_sender;

CREATE TABLE read_events (
    user_id           UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('read_ack', 'read_update')),
    conversation_id   UUID NOT NULL,
    reader_id         UUID NOT NULL,
    up_to_message_id  UUID NOT NULL,
    read_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX read_events_read_at ON read_events (read_at);

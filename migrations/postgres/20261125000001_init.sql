-- Initial schema for chatd on PostgreSQL. Keep in step with migrations/sqlite.
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ
);

CREATE TABLE conversations (
    id                  UUID PRIMARY KEY,
    user1_id            UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user2_id            UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_by          UUID NOT NULL,
    last_message_id     UUID,
    last_message_at     TIMESTAMPTZ,
    -- newest activity: last_message_at, or created_at while there is no message
    activity_at         TIMESTAMPTZ NOT NULL,
    user1_unread_count  BIGINT NOT NULL DEFAULT 0,
    user2_unread_count  BIGINT NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    CONSTRAINT conversations_ordered_pair CHECK (user1_id < user2_id),
    CONSTRAINT conversations_pair_unique UNIQUE (user1_id, user2_id)
);
CREATE INDEX conversations_user1_activity ON conversations (user1_id, activity_at DESC, id DESC);
CREATE INDEX conversations_user2_activity ON conversations (user2_id, activity_at DESC, id DESC);
CREATE INDEX conversations_last_message_at ON conversations (last_message_at);

CREATE TABLE messages (
    id               UUID PRIMARY KEY,
    conversation_id  UUID NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender_id        UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    receiver_id      UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    type             TEXT NOT NULL CHECK (type IN ('text', 'image', 'video', 'file')),
    content          TEXT,
    media            JSONB NOT NULL DEFAULT '[]'::jsonb,
    temp_id          TEXT,
    is_read          BOOLEAN NOT NULL DEFAULT FALSE,
    read_at          TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_conversation_keyset ON messages (conversation_id, created_at, id);
CREATE INDEX messages_conversation_type_keyset ON messages (conversation_id, type, created_at, id);
CREATE INDEX messages_unread ON messages (receiver_id, conversation_id, created_at, id) WHERE NOT is_read;
CREATE INDEX messages_sender ON messages (sender_id);
CREATE UNIQUE INDEX messages_sender_temp_id ON messages (sender_id, temp_id) WHERE temp_id IS NOT NULL;

CREATE TABLE message_links (
    id               UUID PRIMARY KEY,
    message_id       UUID NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    conversation_id  UUID NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender_id        UUID NOT NULL,
    url              TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX message_links_conversation_keyset ON message_links (conversation_id, created_at, id);
CREATE INDEX message_links_message ON message_links (message_id);

CREATE TABLE blocks (
    id          UUID PRIMARY KEY,
    blocker_id  UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id  UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT blocks_pair_unique UNIQUE (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id);
CREATE INDEX blocks_blocker_keyset ON blocks (blocker_id, created_at, id);

-- Tunable per-user limits: `max_requests` per `period_seconds`, read by every chatd.
CREATE TABLE rate_limits (
    action          TEXT PRIMARY KEY,
    max_requests    INTEGER NOT NULL CHECK (max_requests > 0),
    period_seconds  INTEGER NOT NULL CHECK (period_seconds > 0),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO rate_limits (action, max_requests, period_seconds) VALUES
    ('send_message', 30, 60),
    ('create_conversation', 10, 60),
    ('mark_read', 60, 60),
    ('get_conversations', 60, 60),
    ('get_messages', 120, 60);

-- Initial schema for chatd on SQLite. Keep in step with migrations/postgres.
-- Ids are UUID strings; timestamps are INTEGER microseconds since the Unix epoch (UTC),
-- which sort exactly and match PostgreSQL's timestamp precision.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER
);

CREATE TABLE conversations (
    id                  TEXT PRIMARY KEY,
    user1_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user2_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_by          TEXT NOT NULL,
    last_message_id     TEXT,
    last_message_at     INTEGER,
    activity_at         INTEGER NOT NULL,
    user1_unread_count  INTEGER NOT NULL DEFAULT 0,
    user2_unread_count  INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    CHECK (user1_id < user2_id),
    UNIQUE (user1_id, user2_id)
);
CREATE INDEX conversations_user1_activity ON conversations (user1_id, activity_at DESC, id DESC);
CREATE INDEX conversations_user2_activity ON conversations (user2_id, activity_at DESC, id DESC);
CREATE INDEX conversations_last_message_at ON conversations (last_message_at);

CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    receiver_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    type             TEXT NOT NULL CHECK (type IN ('text', 'image', 'video', 'file')),
    content          TEXT,
    media            TEXT NOT NULL DEFAULT '[]',
    temp_id          TEXT,
    is_read          INTEGER NOT NULL DEFAULT 0,
    read_at          INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX messages_conversation_keyset ON messages (conversation_id, created_at, id);
CREATE INDEX messages_conversation_type_keyset ON messages (conversation_id, type, created_at, id);
CREATE INDEX messages_unread ON messages (receiver_id, conversation_id, created_at, id) WHERE is_read = 0;
CREATE INDEX messages_sender ON messages (sender_id);
CREATE UNIQUE INDEX messages_sender_temp_id ON messages (sender_id, temp_id) WHERE temp_id IS NOT NULL;

CREATE TABLE message_links (
    id               TEXT PRIMARY KEY,
    message_id       TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender_id        TEXT NOT NULL,
    url              TEXT NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX message_links_conversation_keyset ON message_links (conversation_id, created_at, id);
CREATE INDEX message_links_message ON message_links (message_id);

CREATE TABLE blocks (
    id          TEXT PRIMARY KEY,
    blocker_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    UNIQUE (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id);
CREATE INDEX blocks_blocker_keyset ON blocks (blocker_id, created_at, id);

CREATE TABLE rate_limits (
    action          TEXT PRIMARY KEY,
    max_requests    INTEGER NOT NULL CHECK (max_requests > 0),
    period_seconds  INTEGER NOT NULL CHECK (period_seconds > 0),
    updated_at      INTEGER NOT NULL DEFAULT 0
);
INSERT INTO rate_limits (action, max_requests, period_seconds) VALUES
    ('send_message', 30, 60),
    ('create_conversation', 10, 60),
    ('mark_read', 60, 60),
    ('get_conversations', 60, 60),
    ('get_messages', 120, 60);

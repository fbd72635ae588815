-- Devices and browsers that want push notifications for a user.
CREATE TABLE push_subscriptions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('webpush', 'fcm', 'apns')),
    target      TEXT NOT NULL,
    p256dh      TEXT,
    auth        TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (user_id, target)
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

-- Devices and browsers that want push notifications for a user.
CREATE TABLE push_subscriptions (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('webpush', 'fcm', 'apns')),
    -- device token (fcm/apns) or push service endpoint URL (webpush)
    target      TEXT NOT NULL,
    p256dh      TEXT,
    auth        TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT push_subscriptions_unique UNIQUE (user_id, target)
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

-- `chatctl purge user` keeps a tombstone so the other party's conversation stays whole:
-- the row loses its name (`deleted-{id}`) and gets `deleted_at`; tokens for it are refused.
ALTER TABLE users ADD COLUMN deleted_at TIMESTAMPTZ;
-- Orphaned-media scans page through the messages that carry media.
CREATE INDEX messages_with_media ON messages (id) WHERE media <> '[]'::jsonb;

-- Every send updates its conversation row; with activity_at inside the two per-user indexes
-- each update also moved two index entries. The activity order was never read from those
-- indexes ("my conversations" is a MULTI-INDEX OR on user1_id / user2_id and a temp b-tree
-- for the order), so plain per-user indexes serve the same plan (user1_id through the pair's
-- unique index) without index writes on a send. Kept in step with migrations/postgres.
CREATE INDEX conversations_user2 ON conversations (user2_id);
DROP INDEX IF EXISTS conversations_user1_activity;
DROP INDEX IF EXISTS conversations_user2_activity;

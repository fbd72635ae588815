-- Every send updates its conversation row (last message, activity, unread counters). With
-- activity_at inside the two per-user indexes, no such update could be HOT: each wrote new
-- entries into four indexes and left a dead row version behind (a 40 s run at 1,500 msg/s:
-- 36,000 dead versions of 500 rows, 6 % HOT), and delivery p99 grew with them until a
-- vacuum (docs/benchmarks.md, session 10). The activity order was never read from those
-- indexes: "my conversations" is `user1_id = me OR user2_id = me`, a BitmapOr of the two
-- followed by a sort. Plain per-user indexes serve it the same way (user1_id through the
-- pair's unique index), and spare room in each page lets the updates stay HOT.
CREATE INDEX conversations_user2 ON conversations (user2_id);
DROP INDEX IF EXISTS conversations_user1_activity;
DROP INDEX IF EXISTS conversations_user2_activity;
ALTER TABLE conversations SET (fillfactor = 50);

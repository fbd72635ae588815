-- `conversations_last_message_at` serves no query (conversation lists order by
-- activity_at through the per-user activity indexes; purges and doctor read messages), yet
-- every send moved last_message_at and so wrote an entry into it: one index write less per
-- send (docs/benchmarks.md, session 9).
DROP INDEX IF EXISTS conversations_last_message_at;

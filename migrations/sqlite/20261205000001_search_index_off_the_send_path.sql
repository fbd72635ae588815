-- The full-text index is no longer written inside each send's transaction: FTS5 writes a
-- new index segment per transaction and merges them level by level, which cost every
-- send and now and then held the single writer for several milliseconds
-- (docs/benchmarks.md, session 20). A send now records its rowid in
-- `messages_fts_pending`; the store indexes the queue every 250 ms, and before every
-- search, so a search still finds every message committed before it.
CREATE TABLE messages_fts_pending (rid INTEGER PRIMARY KEY);

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO messages_fts_pending (rid) VALUES (new.rowid);
END;

-- Only what was indexed is taken out of the index (FTS5's external-content 'delete' must
-- be given exactly what was indexed); a message still pending just leaves the queue.
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content)
        SELECT 'delete', old.rowid, old.content
        WHERE NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE rid = old.rowid);
    DELETE FROM messages_fts_pending WHERE rid = old.rowid;
END;

-- A pending message is indexed later with whatever its content is then.
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
WHEN NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE rid = new.rowid)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;

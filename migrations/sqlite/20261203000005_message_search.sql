-- Full-text search (SPEC "Message lifecycle", `GET /chat/search`): case- and
-- accent-insensitive words and word prefixes over text and captions, in an FTS5 index over
-- the messages table (external content: the text is not stored twice), kept in step by
-- triggers on insert, edit, tombstone and delete (purges).
--
-- The index refers to messages by rowid. A VACUUM of the database file may renumber rowids
-- (messages has no INTEGER PRIMARY KEY): after one, run `chatctl doctor --rebuild-search`.
-- detail=none: the index keeps which messages hold a token, not where in them; words and
-- prefixes, all required, is everything a search asks, and every send writes less.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2',
    detail = none
);

-- Every row has its entry, media without a caption and tombstones too (an empty one): an
-- external-content index expects one per row of its table (its integrity check does).
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;

INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');


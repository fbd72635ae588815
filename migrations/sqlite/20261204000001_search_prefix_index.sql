-- Search: FTS5 prefix indexes for 2-, 3- and 4-character prefixes (session 15).
--
-- A prefix query (`kalo*`) without one reads and merges the doclist of every word that
-- starts with the prefix before it can return a single rowid; with one it reads one
-- doclist, like a whole word. A 4-letter prefix in 7.7 % of a user's 100,000 messages
-- missed the 50 ms p99 target by a few ms on this alone (docs/benchmarks.md, session 15,
-- has the before and after and what it costs a send). Longer prefixes match fewer words;
-- a 1-character one matches so many messages that the newest-window scan answers it
-- (domain/service/search.rs), not the index.
--
-- The triggers of 20261203000005 name the table, not its definition: they keep writing
-- to the new one.
DROP TABLE messages_fts;

CREATE VIRTUAL TABLE messages_fts USING fts5(
    content,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2',
    detail = none,
    prefix = '2 3 4'
);

INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');

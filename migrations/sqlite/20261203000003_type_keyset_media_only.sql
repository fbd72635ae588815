-- The type keyset serves the galleries only (`GET …/media`: image and video, `GET …/files`:
-- file), never text; yet every text send, the bulk of any conversation, paid an entry in it
-- (one of seven index insertions per message). Partial on the types galleries read, it
-- costs text sends nothing. The gallery query says `type <> 'text'` beside its `type IN`
-- list, so both databases can prove the index applies (docs/benchmarks.md, session 11).
DROP INDEX IF EXISTS messages_conversation_type_keyset;
CREATE INDEX messages_media_type_keyset ON messages (conversation_id, type, created_at, id)
    WHERE type <> 'text';

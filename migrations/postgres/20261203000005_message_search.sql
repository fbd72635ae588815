-- Full-text search (SPEC "Message lifecycle", `GET /chat/search`): case- and
-- accent-insensitive words and word prefixes over text and captions.
CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is only STABLE (it reads its dictionary by name), so it cannot sit in an index
-- expression; naming the dictionary makes the whole IMMUTABLE, the documented way.
CREATE FUNCTION chat_search_vector(t text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_tsvector('simple', public.unaccent('public.unaccent'::regdictionary, coalesce(t, '')));

-- An expression index, no stored column: a search's `@@` is answered by the index alone
-- (prefix and AND queries need no recheck), so the vector is never read from the row, and
-- storing it would only make every send's row and WAL bigger (docs/benchmarks.md, session
-- 12). A tombstone's NULL content gives an empty vector. fastupdate off: with GIN's pending
-- list, the send that finds it full (4 MB) merges it into the index inside its own
-- statement, a 100+ ms stall for that batch of sends; without it each insert pays its few
-- entries at once.
CREATE INDEX messages_search ON messages USING gin (chat_search_vector(content))
    WITH (fastupdate = off);

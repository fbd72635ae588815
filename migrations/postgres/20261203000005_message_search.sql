-- Full-text search (SPEC "Message lifecycle", `GET /chat/search`): case- and
-- accent-insensitive words and word prefixes over text and captions.
CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is only STABLE (it reads its dictionary by name), so it cannot feed a stored
-- column; naming the dictionary makes the whole IMMUTABLE, the documented way.
CREATE FUNCTION chat_search_vector(t text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_tsvector('simple', public.unaccent('public.unaccent'::regdictionary, coalesce(t, '')));

-- Stored, so a search never recomputes it; a tombstone's NULL content gives an empty vector.
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (chat_search_vector(content)) STORED;
CREATE INDEX messages_search ON messages USING gin (search);

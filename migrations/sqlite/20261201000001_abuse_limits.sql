-- Limits for every action a client can repeat (issue 16): user lookups (block status,
-- conversation get-or-create, block and push lists), block changes, push subscription
-- changes. Counted before the lookup, so unknown names cost the same as known ones.
INSERT INTO rate_limits (action, max_requests, period_seconds) VALUES
    ('lookup', 60, 60),
    ('block', 30, 60),
    ('push_subscribe', 10, 3600)
ON CONFLICT (action) DO NOTHING;

-- Per-user upload budget (issue 16): megabytes per hour, charged by an upload's declared
-- size before its body is read.
INSERT INTO rate_limits (action, max_requests, period_seconds) VALUES
    ('upload_mb', 1000, 3600)
ON CONFLICT (action) DO NOTHING;

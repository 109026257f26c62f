-- Users can be disabled: a disabled user neither signs in nor uses a
-- token (their tokens are deleted when they are disabled). Tokens are
-- found by user (revocation) and by expiry (the purge).
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
CREATE INDEX api_tokens_user ON api_tokens (user_id);
CREATE INDEX api_tokens_expiry ON api_tokens (expires_at);

-- Sign-in sessions (issue 26): one per signed-in device, the family of refresh tokens
-- it has been given. `family_key` (random) is in every refresh token of the session and
-- finds it; only the SHA-256 of the current token's secret is kept, so the table signs
-- nobody in. Access tokens name the session by `id` (`sid`); revoking the session
-- (`revoked_at`, seconds) revokes them. `created_at` is in microseconds, `expires_at`
-- (the current refresh token's) in seconds.
CREATE TABLE sessions (
    id           uuid   PRIMARY KEY,
    user_id      uuid   NOT NULL REFERENCES users (id),
    family_key   text   NOT NULL UNIQUE,
    refresh_hash bytea  NOT NULL,
    created_at   bigint NOT NULL,
    expires_at   bigint NOT NULL,
    revoked_at   bigint
);
CREATE INDEX sessions_by_user ON sessions (user_id);

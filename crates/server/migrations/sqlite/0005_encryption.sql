-- Encryption at rest (see crates/server/src/crypto.rs). Emails and phone numbers are stored
-- sealed from now on, so equality lookups (login, registration checks, exact search) use
-- keyed hashes of them. The old UNIQUE constraints on `email`/`phone` stay but no longer
-- matter: two sealings of the same value differ.
ALTER TABLE users ADD COLUMN email_hash TEXT;
ALTER TABLE users ADD COLUMN phone_hash TEXT;
CREATE UNIQUE INDEX users_email_hash ON users(email_hash);
CREATE UNIQUE INDEX users_phone_hash ON users(phone_hash);

-- One row. `canary` is a known text sealed under the key the data is under: a wrong key
-- fails to open it and the server refuses to start. `state` says whether values may still be
-- in plaintext (an install from before this migration), under an older key (a rotation
-- under way), or all under the canary's key.
-- Rows written before this migration are sealed by the server at its next start.
CREATE TABLE encryption (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    canary  TEXT NOT NULL,
    state   TEXT NOT NULL CHECK (state IN ('plaintext', 'rotating', 'done'))
);

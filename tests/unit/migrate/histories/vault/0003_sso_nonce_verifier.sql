-- hoist:up
-- Drop and recreate: the nonces in the table do not survive.
DROP TABLE sso_nonce;
CREATE TABLE sso_nonce (nonce TEXT PRIMARY KEY, verifier TEXT, created_at TEXT NOT NULL);
-- hoist:down
DROP TABLE sso_nonce;
CREATE TABLE sso_nonce (nonce TEXT PRIMARY KEY, created_at TEXT NOT NULL);

-- hoist:up
-- Drop and recreate: the nonces in the table do not survive.
DROP TABLE sso_nonce;
CREATE TABLE sso_nonce (
  state        TEXT NOT NULL PRIMARY KEY,
  nonce        TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  created_at   TIMESTAMP NOT NULL DEFAULT now()
);
-- hoist:down
DROP TABLE sso_nonce;
CREATE TABLE sso_nonce (
  nonce      CHAR(36) NOT NULL PRIMARY KEY,
  created_at TIMESTAMP NOT NULL DEFAULT now()
);

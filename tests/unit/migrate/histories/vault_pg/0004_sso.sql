-- hoist:up
CREATE TABLE sso_nonce (
  nonce      CHAR(36) NOT NULL PRIMARY KEY,
  created_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE sso_users (
  user_uuid  VARCHAR(40) NOT NULL PRIMARY KEY REFERENCES users (uuid),
  identifier TEXT NOT NULL UNIQUE
);
-- hoist:down
DROP TABLE sso_users;
DROP TABLE sso_nonce;

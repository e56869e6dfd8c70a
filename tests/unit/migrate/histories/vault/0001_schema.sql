-- hoist:up
CREATE TABLE users (uuid TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE);
CREATE TABLE ciphers (uuid TEXT PRIMARY KEY, user_uuid TEXT NOT NULL REFERENCES users(uuid), data TEXT NOT NULL);
CREATE TABLE folders_ciphers (cipher_uuid TEXT NOT NULL REFERENCES ciphers(uuid), folder_uuid TEXT NOT NULL,
                              PRIMARY KEY (cipher_uuid, folder_uuid));
CREATE TABLE sso_nonce (nonce TEXT PRIMARY KEY, created_at TEXT NOT NULL);
-- hoist:down
DROP TABLE sso_nonce;
DROP TABLE folders_ciphers;
DROP TABLE ciphers;
DROP TABLE users;

-- hoist:up
-- A rename-aside rebuild: the old table is moved out of the way, the new
-- one created under the old name, the rows copied, the old one dropped.
ALTER TABLE ciphers RENAME TO oldCiphers;
CREATE TABLE ciphers (uuid TEXT PRIMARY KEY, user_uuid TEXT NOT NULL REFERENCES users(uuid), data TEXT NOT NULL,
                      favorite BOOLEAN NOT NULL DEFAULT 0);
INSERT INTO ciphers (uuid, user_uuid, data) SELECT uuid, user_uuid, data FROM oldCiphers;
DROP TABLE oldCiphers;
-- hoist:down
ALTER TABLE ciphers RENAME TO oldCiphers;
CREATE TABLE ciphers (uuid TEXT PRIMARY KEY, user_uuid TEXT NOT NULL REFERENCES users(uuid), data TEXT NOT NULL);
INSERT INTO ciphers (uuid, user_uuid, data) SELECT uuid, user_uuid, data FROM oldCiphers;
DROP TABLE oldCiphers;

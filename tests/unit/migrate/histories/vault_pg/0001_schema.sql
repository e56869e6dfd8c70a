-- hoist:up
-- Fixed-width text keys, referenced from several tables.
CREATE TABLE users (
  uuid        CHAR(36) NOT NULL PRIMARY KEY,
  email       VARCHAR(255) NOT NULL UNIQUE,
  created_at  TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE organizations (
  uuid  VARCHAR(40) NOT NULL PRIMARY KEY,
  name  TEXT NOT NULL
);
CREATE TABLE ciphers (
  uuid      CHAR(36) NOT NULL PRIMARY KEY,
  user_uuid CHAR(36) REFERENCES users (uuid),
  org_uuid  CHAR(36) REFERENCES organizations (uuid),
  name      TEXT NOT NULL,
  favorite  BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE folders (
  uuid      CHAR(36) NOT NULL PRIMARY KEY,
  user_uuid CHAR(36) NOT NULL REFERENCES users (uuid),
  name      TEXT NOT NULL
);
CREATE TABLE folders_ciphers (
  cipher_uuid CHAR(36) NOT NULL REFERENCES ciphers (uuid),
  folder_uuid CHAR(36) NOT NULL REFERENCES folders (uuid),
  PRIMARY KEY (cipher_uuid, folder_uuid)
);
-- hoist:down
DROP TABLE folders_ciphers;
DROP TABLE folders;
DROP TABLE ciphers;
DROP TABLE organizations;
DROP TABLE users;

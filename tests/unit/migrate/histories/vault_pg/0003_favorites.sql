-- hoist:up
-- Move a flag into a table of its own, then drop the column.
CREATE TABLE favorites (
  user_uuid   VARCHAR(40) NOT NULL REFERENCES users (uuid),
  cipher_uuid VARCHAR(40) NOT NULL REFERENCES ciphers (uuid),
  PRIMARY KEY (user_uuid, cipher_uuid)
);
INSERT INTO favorites (user_uuid, cipher_uuid)
  SELECT user_uuid, uuid FROM ciphers WHERE favorite AND user_uuid IS NOT NULL;
ALTER TABLE ciphers DROP COLUMN favorite;
-- hoist:down
ALTER TABLE ciphers ADD COLUMN favorite BOOLEAN NOT NULL DEFAULT false;
UPDATE ciphers SET favorite = true
  WHERE EXISTS (SELECT 1 FROM favorites f WHERE f.cipher_uuid = ciphers.uuid AND f.user_uuid = ciphers.user_uuid);
DROP TABLE favorites;

-- hoist:up
ALTER TABLE users ADD COLUMN fqn TEXT NOT NULL DEFAULT '';
UPDATE users SET fqn =
  (CASE WHEN instance_id = 1 THEN username
   ELSE username || '@' || (SELECT domain FROM instances WHERE id = instance_id LIMIT 1) END)
  WHERE fqn = '';
-- hoist:down
ALTER TABLE users DROP COLUMN fqn;

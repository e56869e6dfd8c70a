-- hoist:up
-- A flag becomes a role: add, copy, drop.
ALTER TABLE users ADD COLUMN role INTEGER NOT NULL DEFAULT 2;
UPDATE users SET role = 0 WHERE is_admin;
ALTER TABLE users DROP COLUMN is_admin;
-- hoist:down
ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT false;
UPDATE users SET is_admin = true WHERE role = 0;
ALTER TABLE users DROP COLUMN role;

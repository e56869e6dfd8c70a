-- hoist:up
-- Replace a foreign key in one ALTER TABLE, keeping its name.
ALTER TABLE sso_users
  DROP CONSTRAINT "sso_users_user_uuid_fkey",
  ADD CONSTRAINT "sso_users_user_uuid_fkey" FOREIGN KEY (user_uuid) REFERENCES users (uuid) ON DELETE CASCADE;
-- hoist:down
ALTER TABLE sso_users
  DROP CONSTRAINT "sso_users_user_uuid_fkey",
  ADD CONSTRAINT "sso_users_user_uuid_fkey" FOREIGN KEY (user_uuid) REFERENCES users (uuid);

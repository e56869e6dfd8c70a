-- Expand: release 2 writes author and author_name and reads author_name;
-- release 1 (the standby) never sees the new column.
-- hoist:phase expand
-- hoist:up
ALTER TABLE notes ADD COLUMN author_name TEXT;

-- hoist:down
ALTER TABLE notes DROP COLUMN author_name;

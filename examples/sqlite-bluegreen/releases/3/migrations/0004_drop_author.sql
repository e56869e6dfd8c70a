-- Contract: release 3 reads and writes author_name only. Dropping author
-- deletes data releases 1 and 2 read, so it runs with `hoist contract`,
-- after the standby is stopped. Rows an older release wrote since 0003 are
-- backfilled first.
-- hoist:phase contract
-- hoist:up
UPDATE notes SET author_name = author WHERE author_name IS NULL AND author IS NOT NULL;
ALTER TABLE notes DROP COLUMN author;

-- hoist:down
ALTER TABLE notes ADD COLUMN author TEXT;
UPDATE notes SET author = author_name;

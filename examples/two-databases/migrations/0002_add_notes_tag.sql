-- A nullable column: the previous version keeps inserting without it.
-- hoist:phase expand
-- hoist:up
ALTER TABLE notes ADD COLUMN tag TEXT;
CREATE INDEX notes_tag ON notes (tag);

-- hoist:down
DROP INDEX notes_tag;
ALTER TABLE notes DROP COLUMN tag;

-- Expand (data only): copy author into author_name for the rows release 1
-- wrote. Release 1 may still write rows with author only (it is the
-- standby, and a rollback puts it back in traffic), so release 2 reads
-- COALESCE(author_name, author) and 0004 backfills again before the drop.
-- hoist:phase expand
-- hoist:up
UPDATE notes SET author_name = author WHERE author_name IS NULL AND author IS NOT NULL;

-- hoist:down
-- Nothing to undo: 0002's down drops the column this filled.
SELECT 1;

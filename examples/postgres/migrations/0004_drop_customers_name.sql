-- Contract half: once no running version reads name, drop it.
-- hoist:phase contract
-- hoist:up
ALTER TABLE customers DROP COLUMN name;

-- hoist:down
ALTER TABLE customers ADD COLUMN name text;
UPDATE customers SET name = full_name;
ALTER TABLE customers ALTER COLUMN name SET NOT NULL;

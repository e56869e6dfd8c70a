-- Expand half of renaming customers.name to full_name: the new column,
-- filled from the old one. The running version still writes name.
-- hoist:phase expand
-- hoist:up
ALTER TABLE customers ADD COLUMN full_name text;
UPDATE customers SET full_name = name WHERE full_name IS NULL;

-- hoist:down
ALTER TABLE customers DROP COLUMN full_name;

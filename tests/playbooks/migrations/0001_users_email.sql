-- hoist:phase expand
-- hoist:up
ALTER TABLE users ADD COLUMN email TEXT;

-- hoist:down
ALTER TABLE users DROP COLUMN email;

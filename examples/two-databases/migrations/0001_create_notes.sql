-- hoist:phase expand
-- hoist:up
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL);

-- hoist:down
DROP TABLE notes;

-- The notes table of release 1. `author` is nullable so that release 3,
-- which no longer writes it, can run before 0004 drops it.
-- hoist:phase expand
-- hoist:up
CREATE TABLE notes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  body TEXT NOT NULL,
  author TEXT,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- hoist:down
DROP TABLE notes;

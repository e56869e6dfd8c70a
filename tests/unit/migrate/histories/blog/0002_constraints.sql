-- hoist:up
-- Add NOT NULL/UNIQUE constraints: SQLite cannot alter them, so every
-- table is rebuilt the documented way (new table, copy, drop, rename).
CREATE TABLE users2 (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
INSERT INTO users2 SELECT id, name FROM users;
DROP TABLE users;
ALTER TABLE users2 RENAME TO users;
CREATE TABLE blogs2 (id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                     title TEXT NOT NULL UNIQUE);
INSERT INTO blogs2 SELECT id, owner_id, title FROM blogs;
DROP TABLE blogs;
ALTER TABLE blogs2 RENAME TO blogs;
CREATE TABLE posts2 (id INTEGER PRIMARY KEY, blog_id INTEGER NOT NULL REFERENCES blogs(id) ON DELETE CASCADE,
                     body TEXT NOT NULL CHECK (body <> ''));
INSERT INTO posts2 SELECT id, blog_id, body FROM posts;
DROP TABLE posts;
ALTER TABLE posts2 RENAME TO posts;
-- hoist:down
CREATE TABLE posts2 (id INTEGER PRIMARY KEY, blog_id INTEGER NOT NULL REFERENCES blogs(id) ON DELETE CASCADE,
                     body TEXT NOT NULL);
INSERT INTO posts2 SELECT id, blog_id, body FROM posts;
DROP TABLE posts;
ALTER TABLE posts2 RENAME TO posts;
CREATE TABLE blogs2 (id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                     title TEXT NOT NULL);
INSERT INTO blogs2 SELECT id, owner_id, title FROM blogs;
DROP TABLE blogs;
ALTER TABLE blogs2 RENAME TO blogs;
CREATE TABLE users2 (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO users2 SELECT id, name FROM users;
DROP TABLE users;
ALTER TABLE users2 RENAME TO users;

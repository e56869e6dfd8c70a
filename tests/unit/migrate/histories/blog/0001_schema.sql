-- hoist:up
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE blogs (id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    title TEXT NOT NULL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, blog_id INTEGER NOT NULL REFERENCES blogs(id) ON DELETE CASCADE,
                    body TEXT NOT NULL);
CREATE TABLE comments (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
                       author_id INTEGER REFERENCES users(id) ON DELETE CASCADE, body TEXT NOT NULL);
-- hoist:down
DROP TABLE comments;
DROP TABLE posts;
DROP TABLE blogs;
DROP TABLE users;

-- hoist:up
CREATE TABLE timeline_definition (
  id      SERIAL PRIMARY KEY,
  user_id INTEGER REFERENCES users ON DELETE CASCADE,
  name    VARCHAR NOT NULL,
  query   VARCHAR NOT NULL,
  CONSTRAINT timeline_unique_user_name UNIQUE (user_id, name)
);
-- Checked at COMMIT: a migration may insert entries before their posts.
CREATE TABLE timeline (
  id          SERIAL PRIMARY KEY,
  post_id     INTEGER NOT NULL REFERENCES posts ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
  timeline_id INTEGER NOT NULL REFERENCES timeline_definition ON DELETE CASCADE
);
INSERT INTO timeline_definition (name, query) VALUES ('Local feed', 'local'), ('Federated feed', 'all');
INSERT INTO timeline_definition (user_id, name, query)
  SELECT id, 'Your feed', CONCAT('followed or [', fqn, ']') FROM users;
INSERT INTO timeline (post_id, timeline_id)
  SELECT posts.id, timeline_definition.id FROM posts, timeline_definition WHERE timeline_definition.query = 'all';
-- hoist:down
DROP TABLE timeline;
DROP TABLE timeline_definition;

-- hoist:up
CREATE TABLE instances (
  id            SERIAL PRIMARY KEY,
  domain        VARCHAR NOT NULL,
  local         BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE users (
  id          SERIAL PRIMARY KEY,
  username    VARCHAR NOT NULL,
  instance_id INTEGER NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
  ap_url      TEXT NOT NULL,
  is_admin    BOOLEAN NOT NULL DEFAULT false,
  updated_at  TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE blogs (
  id          SERIAL PRIMARY KEY,
  actor_id    VARCHAR NOT NULL,
  instance_id INTEGER NOT NULL REFERENCES instances (id) ON DELETE CASCADE
);
CREATE TABLE blog_authors (
  id        SERIAL PRIMARY KEY,
  blog_id   INTEGER NOT NULL REFERENCES blogs (id) ON DELETE CASCADE,
  author_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE
);
CREATE TABLE medias (
  id       SERIAL PRIMARY KEY,
  owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  path     TEXT NOT NULL
);
CREATE TABLE posts (
  id       SERIAL PRIMARY KEY,
  blog_id  INTEGER NOT NULL REFERENCES blogs (id) ON DELETE CASCADE,
  slug     VARCHAR NOT NULL,
  cover_id INTEGER REFERENCES medias (id)
);
CREATE TABLE comments (
  id        SERIAL PRIMARY KEY,
  post_id   INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
  author_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  body      TEXT NOT NULL
);
-- A trigger function: its dollar-quoted body holds ';' and quotes.
CREATE FUNCTION touch_updated_at() RETURNS trigger AS $$
BEGIN
  IF NEW IS DISTINCT FROM OLD AND NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
    NEW.updated_at := current_timestamp;  -- 'touched'
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
DO $setup$
BEGIN
  INSERT INTO instances (domain, local) VALUES ('blog.example', true);
END
$setup$;
-- hoist:down
DROP TRIGGER users_touch ON users;
DROP FUNCTION touch_updated_at();
DROP TABLE comments;
DROP TABLE posts;
DROP TABLE medias;
DROP TABLE blog_authors;
DROP TABLE blogs;
DROP TABLE users;
DROP TABLE instances;

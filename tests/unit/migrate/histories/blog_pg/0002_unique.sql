-- hoist:up
-- Delete the duplicates first (their children go with them, ON DELETE
-- CASCADE), then add the constraints.
DELETE FROM users a USING users b WHERE a.id > b.id AND a.ap_url = b.ap_url;
DELETE FROM blog_authors a USING blog_authors b
  WHERE a.id > b.id AND a.blog_id = b.blog_id AND a.author_id = b.author_id;
DELETE FROM posts a USING posts b WHERE a.id > b.id AND a.blog_id = b.blog_id AND a.slug = b.slug;
ALTER TABLE users ADD CONSTRAINT users_unique_ap_url UNIQUE (ap_url);
ALTER TABLE blog_authors ADD CONSTRAINT blog_authors_unique UNIQUE (blog_id, author_id);
ALTER TABLE posts ADD CONSTRAINT posts_unique_slug UNIQUE (blog_id, slug);
-- hoist:down
ALTER TABLE posts DROP CONSTRAINT IF EXISTS posts_unique_slug;
ALTER TABLE blog_authors DROP CONSTRAINT IF EXISTS blog_authors_unique;
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_unique_ap_url;

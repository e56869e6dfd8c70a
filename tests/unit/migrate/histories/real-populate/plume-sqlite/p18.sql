-- Every table before the constraints rebuild, with children (ON DELETE CASCADE) of instances, users, blogs, posts, comments, apps.
-- Distinct like dates: the constraints rebuild copies likes with SELECT * into a table whose
-- ap_url and creation_date are swapped, so equal dates would collide on UNIQUE(ap_url).
-- Booleans as Plume's SQL writes them ('t'/'f'; plume-sqlite-intbool/ adds two users with 0/1, as diesel binds a bool).
INSERT INTO instances (id, public_domain, name, local) VALUES (1, 'local.example', 'Local', 't'), (2, 'remote.example', 'Remote', 'f'), (3, 'far.example', 'Far', 'f');
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 30)
INSERT INTO users (id, username, outbox_url, inbox_url, is_admin, instance_id, ap_url, followers_endpoint)
SELECT n, 'user' || n, 'out' || n, 'in' || n, CASE WHEN n = 1 THEN 't' ELSE 'f' END, CASE WHEN n % 5 = 0 THEN 2 WHEN n % 7 = 0 THEN 3 ELSE 1 END, 'ap:u' || n, 'fol' || n FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 8)
INSERT INTO blogs (id, actor_id, title, outbox_url, inbox_url, instance_id, ap_url) SELECT n, 'blog' || n, 'Blog ' || n, 'bout' || n, 'bin' || n, CASE WHEN n = 8 THEN 2 ELSE 1 END, 'ap:b' || n FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 16)
INSERT INTO blog_authors (blog_id, author_id, is_owner) SELECT n % 8 + 1, n, 't' FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 60)
INSERT INTO posts (id, blog_id, slug, title, published, ap_url) SELECT n, n % 8 + 1, 'post-' || n, 'Post ' || n, 't', 'ap:p' || n FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 60)
INSERT INTO post_authors (post_id, author_id) SELECT n, n % 30 + 1 FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 30)
INSERT INTO follows (follower_id, following_id, ap_url) SELECT n, n % 30 + 1, 'ap:f' || n FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 90)
INSERT INTO comments (id, post_id, author_id, ap_url, in_response_to_id) SELECT n, n % 60 + 1, n % 30 + 1, 'ap:c' || n, CASE WHEN n > 60 THEN n - 60 END FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 45)
INSERT INTO likes (user_id, post_id, ap_url, creation_date) SELECT n % 30 + 1, n, 'ap:l' || n, datetime('2018-06-01', '+' || n || ' minutes') FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 25)
INSERT INTO notifications (user_id, kind, object_id) SELECT n, 'LIKE', n FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20)
INSERT INTO reshares (user_id, post_id, ap_url) SELECT n % 30 + 1, n, 'ap:r' || n FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 12)
INSERT INTO mentions (mentioned_id, post_id, comment_id, ap_url) SELECT n, CASE WHEN n <= 6 THEN n END, CASE WHEN n > 6 THEN n END, 'ap:m' || n FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 10)
INSERT INTO medias (id, file_path, owner_id) SELECT n, 'static/media/m' || n, n FROM g;
UPDATE users SET avatar_id = id WHERE id <= 5;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 50)
INSERT INTO tags (tag, is_hashtag, post_id) SELECT 't' || (n % 5), CASE WHEN n % 2 = 0 THEN 't' ELSE 'f' END, n FROM g;
INSERT INTO apps (id, name, client_id, client_secret) VALUES (1, 'app', 'cid', 'secret'), (2, 'other', 'cid2', 'secret2');
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 6)
INSERT INTO api_tokens (value, scopes, app_id, user_id) SELECT 'tok' || n, 'read', n % 2 + 1, n FROM g;

INSERT INTO instances (public_domain, name, local) VALUES ('local.example', 'Local', true), ('remote.example', 'Remote', false), ('remote.example', 'Remote dup', false);
INSERT INTO users (username, outbox_url, inbox_url, is_admin, instance_id, ap_url, followers_endpoint)
SELECT 'user' || g, 'out' || g, 'in' || g, g = 1, CASE WHEN g % 5 = 0 THEN 2 ELSE 1 END, 'ap:u' || g, 'fol' || g FROM generate_series(1, 30) g;
-- a duplicate user (same ap_url): the constraints migration deletes it, and its posts' authorship with it (ON DELETE CASCADE)
INSERT INTO users (username, outbox_url, inbox_url, instance_id, ap_url, followers_endpoint) VALUES ('dup', 'outdup', 'indup', 1, 'ap:u3', 'foldup');
INSERT INTO blogs (actor_id, title, outbox_url, inbox_url, instance_id, ap_url) SELECT 'blog' || g, 'Blog ' || g, 'bout' || g, 'bin' || g, 1, 'ap:b' || g FROM generate_series(1, 8) g;
INSERT INTO blog_authors (blog_id, author_id, is_owner) SELECT g % 8 + 1, g, true FROM generate_series(1, 16) g;
INSERT INTO medias (file_path, owner_id) SELECT 'm' || g, g FROM generate_series(1, 10) g;
INSERT INTO posts (blog_id, slug, title, ap_url, cover_id) SELECT g % 8 + 1, 'post-' || g, 'Post ' || g, 'ap:p' || g, CASE WHEN g <= 10 THEN g END FROM generate_series(1, 60) g;
INSERT INTO post_authors (post_id, author_id) SELECT g, g % 30 + 1 FROM generate_series(1, 60) g;
INSERT INTO post_authors (post_id, author_id) VALUES (1, 31), (2, 31);
INSERT INTO follows (follower_id, following_id, ap_url) SELECT g, g % 30 + 1, 'ap:f' || g FROM generate_series(1, 30) g;
INSERT INTO comments (post_id, author_id, ap_url) SELECT g % 60 + 1, g % 30 + 1, 'ap:c' || g FROM generate_series(1, 90) g;
INSERT INTO likes (user_id, post_id, ap_url) SELECT g % 30 + 1, g, 'ap:l' || g FROM generate_series(1, 45) g;
INSERT INTO reshares (user_id, post_id, ap_url) SELECT g % 30 + 1, g, 'ap:r' || g FROM generate_series(1, 20) g;
INSERT INTO mentions (mentioned_id, post_id, ap_url) SELECT g, g, 'ap:m' || g FROM generate_series(1, 12) g;
INSERT INTO tags (tag, is_hashtag, post_id) SELECT 't' || (g % 5), g % 2 = 0, g FROM generate_series(1, 50) g;
INSERT INTO api_tokens (value, user_id) SELECT 'tok' || g, g FROM generate_series(1, 5) g;
UPDATE users SET display_name = 'touched' WHERE id <= 3;
INSERT INTO apps (name, client_id, client_secret) VALUES ('Plume web interface', 'c1', 's1'), ('other', 'c2', 's2');

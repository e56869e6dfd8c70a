-- Timelines, lists, password resets, a custom domain.
INSERT INTO timeline_definition (id, user_id, name, query) VALUES (1, NULL, 'Local feed', 'local'), (2, NULL, 'Federated feed', 'all'), (3, 2, 'Your feed', 'followed or [ user2 ]');
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 15)
INSERT INTO timeline (post_id, timeline_id) SELECT n, 3 FROM g;
INSERT INTO lists (id, name, user_id, type) VALUES (1, 'friends', 2, 0), (2, 'blogs', 3, 1);
INSERT INTO list_elems (list_id, user_id, blog_id, word) VALUES (1, 4, NULL, NULL), (1, 5, NULL, NULL), (2, NULL, 1, NULL), (2, NULL, NULL, 'rust');
INSERT INTO password_reset_requests (email, token, expiration_date) VALUES ('a@x', 'tok-a', '2030-01-01'), ('b@x', 'tok-b', '2030-01-01');
UPDATE blogs SET custom_domain = 'blog1.example' WHERE id = 1;

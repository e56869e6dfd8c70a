INSERT INTO lists (name, user_id, type) SELECT 'list' || g, g, 0 FROM generate_series(1, 4) g;
INSERT INTO list_elems (list_id, user_id) SELECT g % 4 + 1, g FROM generate_series(1, 8) g;
INSERT INTO timeline_definition (user_id, name, query) VALUES (NULL, 'Local feed', 'local'), (NULL, 'Federated feed', 'all'), (2, 'Friends', 'followed or [ user2 ]');
INSERT INTO timeline (post_id, timeline_id) SELECT g, 3 FROM generate_series(1, 15) g;
UPDATE blogs SET summary_html = 'sum' WHERE id <= 2;
UPDATE users SET summary_html = 'html' WHERE id <= 2;

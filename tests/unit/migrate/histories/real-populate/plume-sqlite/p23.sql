-- Comment seers (children of comments and users).
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20)
INSERT INTO comment_seers (comment_id, user_id) SELECT n, n % 30 + 1 FROM g;
UPDATE comments SET public_visibility = 'f' WHERE id <= 20;

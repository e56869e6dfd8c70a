-- SSO users again, now ON DELETE CASCADE children of users.
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5)
INSERT INTO sso_users (user_uuid, identifier) SELECT 'u' || n, 'sso-' || n FROM g;

-- SSO users before the cascade migration drops and recreates their table.
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5)
INSERT INTO sso_users (user_uuid, identifier) SELECT 'u' || n, 'sso-' || n FROM g;

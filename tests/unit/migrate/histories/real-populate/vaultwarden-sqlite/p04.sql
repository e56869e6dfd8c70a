-- Rows in every table and in the children of users, ciphers, folders, collections, organizations.
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20)
INSERT INTO users (uuid, created_at, updated_at, email, name, password_hash, salt, password_iterations, key, totp_secret, security_stamp, equivalent_domains, excluded_globals)
SELECT 'u' || n, '2020-01-01', '2020-01-01', 'user' || n || '@example.com', 'User ' || n, x'00', x'01', 100000, 'k' || n, CASE WHEN n <= 5 THEN 'totp' || n END, 's', '[]', '[]' FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 30)
INSERT INTO devices (uuid, created_at, updated_at, user_uuid, name, type, refresh_token) SELECT 'd' || n, '2020-01-01', '2020-01-01', 'u' || (n % 20 + 1), 'dev', 1, 'rt' || n FROM g;
INSERT INTO organizations (uuid, name, billing_email) VALUES ('o1', 'Org 1', 'b@x'), ('o2', 'Org 2', 'b@x'), ('o3', 'Org 3', 'b@x');
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100)
INSERT INTO ciphers (uuid, created_at, updated_at, user_uuid, organization_uuid, type, name, data, favorite)
SELECT 'c' || n, '2020-01-01', '2020-01-01', CASE WHEN n % 4 = 0 THEN NULL ELSE 'u' || (n % 20 + 1) END, CASE WHEN n % 4 = 0 THEN 'o' || (n % 3 + 1) END, 1, 'cipher ' || n, '{}', n % 3 = 0 FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 15)
INSERT INTO attachments (id, cipher_uuid, file_name, file_size) SELECT 'a' || n, 'c' || n, 'f' || n, 10 FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 25)
INSERT INTO folders (uuid, created_at, updated_at, user_uuid, name) SELECT 'f' || n, '2020-01-01', '2020-01-01', 'u' || (n % 20 + 1), 'folder' FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 40)
INSERT INTO folders_ciphers (cipher_uuid, folder_uuid) SELECT 'c' || n, 'f' || (n % 25 + 1) FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 6)
INSERT INTO collections (uuid, org_uuid, name) SELECT 'col' || n, 'o' || (n % 3 + 1), 'coll' FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 12)
INSERT INTO users_collections (user_uuid, collection_uuid) SELECT 'u' || n, 'col' || (n % 6 + 1) FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 15)
INSERT INTO users_organizations (uuid, user_uuid, org_uuid, access_all, key, status, type) SELECT 'uo' || n, 'u' || n, 'o' || (n % 3 + 1), 1, 'k', 2, 0 FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20)
INSERT INTO ciphers_collections (cipher_uuid, collection_uuid) SELECT 'c' || (n * 4), 'col' || (n % 6 + 1) FROM g;

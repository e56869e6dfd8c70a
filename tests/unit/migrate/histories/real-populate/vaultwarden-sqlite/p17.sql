-- Before the ciphers rebuild (favorites): more favourite ciphers, children of ciphers, and the tables added since.
WITH RECURSIVE g(n) AS (SELECT 101 UNION ALL SELECT n + 1 FROM g WHERE n < 110)
INSERT INTO ciphers (uuid, created_at, updated_at, user_uuid, atype, name, data, favorite, password_history, deleted_at)
SELECT 'c' || n, '2020-06-01', '2020-06-01', 'u1', 1, 'fav ' || n, '{}', 1, '[]', CASE WHEN n = 110 THEN '2020-07-01' END FROM g;
WITH RECURSIVE g(n) AS (SELECT 101 UNION ALL SELECT n + 1 FROM g WHERE n < 110)
INSERT INTO attachments (id, cipher_uuid, file_name, file_size, akey) SELECT 'a' || n, 'c' || n, 'f' || n, 20, 'ak' FROM g;
WITH RECURSIVE g(n) AS (SELECT 10 UNION ALL SELECT n + 1 FROM g WHERE n < 15)
INSERT INTO twofactor (uuid, user_uuid, atype, enabled, data) SELECT 't' || n, 'u' || n, 1, 1, '{}' FROM g;
INSERT INTO invitations (email) VALUES ('i1@example.com'), ('i2@example.com');
INSERT INTO org_policies (uuid, org_uuid, atype, enabled, data) VALUES ('p1', 'o1', 0, 1, '{}'), ('p2', 'o2', 1, 0, '{}');

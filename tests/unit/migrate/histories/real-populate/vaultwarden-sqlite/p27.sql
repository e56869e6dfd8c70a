-- Groups and their children, sends, emergency access, incomplete 2FA logins.
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5)
INSERT INTO sends (uuid, user_uuid, name, atype, data, key, access_count, creation_date, revision_date, deletion_date, disabled)
SELECT 's' || n, 'u' || n, 'send ' || n, 0, '{}', 'sk', 0, '2021-04-01', '2021-04-01', '2031-04-01', 0 FROM g;
INSERT INTO emergency_access (uuid, grantor_uuid, grantee_uuid, email, atype, status, wait_time_days, updated_at, created_at)
VALUES ('e1', 'u1', 'u2', 'user2@example.com', 0, 2, 7, '2021-09-01', '2021-09-01'), ('e2', 'u3', 'u4', NULL, 1, 0, 3, '2021-09-01', '2021-09-01');
INSERT INTO twofactor_incomplete (user_uuid, device_uuid, device_name, login_time, ip_address)
VALUES ('u1', 'd1', 'phone', '2021-11-01', '10.0.0.1'), ('u2', 'd2', 'laptop', '2021-11-01', '10.0.0.2');
INSERT INTO groups (uuid, organizations_uuid, name, access_all, creation_date, revision_date)
VALUES ('g1', 'o1', 'G1', 0, '2022-08-01', '2022-08-01'), ('g2', 'o2', 'G2', 1, '2022-08-01', '2022-08-01'), ('g3', 'o3', 'G3', 0, '2022-08-01', '2022-08-01');
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 9)
INSERT INTO groups_users (groups_uuid, users_organizations_uuid) SELECT 'g' || (n % 3 + 1), 'uo' || n FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 6)
INSERT INTO collections_groups (collections_uuid, groups_uuid, read_only, hide_passwords) SELECT 'col' || n, 'g' || (n % 3 + 1), 0, 0 FROM g;

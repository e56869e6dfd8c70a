INSERT INTO users (uuid, created_at, updated_at, email, name, password_hash, salt, password_iterations, akey, security_stamp, equivalent_domains, excluded_globals)
SELECT 'u' || g, now(), now(), 'user' || g || '@example.com', 'User ' || g, '\x00', '\x01', 100000, 'k', 's', '[]', '[]' FROM generate_series(1, 20) g;
INSERT INTO devices SELECT 'd' || g, now(), now(), 'u' || (g % 20 + 1), 'dev', 1, NULL, 'rt' FROM generate_series(1, 30) g;
INSERT INTO organizations SELECT 'o' || g, 'Org ' || g, 'b@x', '', false, '', '', '', '', '', '', '' FROM generate_series(1, 3) g;
INSERT INTO ciphers (uuid, created_at, updated_at, user_uuid, organization_uuid, atype, name, data, favorite)
SELECT 'c' || g, now(), now(), CASE WHEN g % 4 = 0 THEN NULL ELSE 'u' || (g % 20 + 1) END, CASE WHEN g % 4 = 0 THEN 'o' || (g % 3 + 1) END, 1, 'cipher ' || g, '{}', g % 3 = 0 FROM generate_series(1, 100) g;
INSERT INTO attachments SELECT 'a' || g, 'c' || g, 'f', 10, NULL FROM generate_series(1, 15) g;
INSERT INTO folders SELECT 'f' || g, now(), now(), 'u' || (g % 20 + 1), 'folder' FROM generate_series(1, 25) g;
INSERT INTO collections SELECT 'col' || g, 'o' || (g % 3 + 1), 'coll' FROM generate_series(1, 6) g;
INSERT INTO users_collections SELECT 'u' || g, 'col' || (g % 6 + 1), false FROM generate_series(1, 12) g;
INSERT INTO users_organizations SELECT 'uo' || g, 'u' || g, 'o' || (g % 3 + 1), true, 'k', 2, 0 FROM generate_series(1, 15) g;
INSERT INTO folders_ciphers SELECT 'c' || g, 'f' || (g % 25 + 1) FROM generate_series(1, 40) g;
INSERT INTO ciphers_collections SELECT 'c' || (g * 4), 'col' || (g % 6 + 1) FROM generate_series(1, 20) g;
INSERT INTO twofactor SELECT 't' || g, 'u' || g, 0, true, '{}', 0 FROM generate_series(1, 10) g;
INSERT INTO invitations SELECT 'inv' || g || '@x' FROM generate_series(1, 4) g;
INSERT INTO org_policies SELECT 'p' || g, 'o' || g, 1, true, '{}' FROM generate_series(1, 3) g;

INSERT INTO sends (uuid, user_uuid, name, atype, data, key, access_count, creation_date, revision_date, deletion_date, disabled)
SELECT 's' || g, 'u' || (g % 20 + 1), 'send', 0, '{}', 'k', 0, now(), now(), now() + interval '7 days', false FROM generate_series(1, 8) g;
INSERT INTO emergency_access (uuid, grantor_uuid, grantee_uuid, atype, status, wait_time_days, updated_at, created_at)
SELECT 'ea' || g, 'u' || g, 'u' || (g + 1), 0, 0, 7, now(), now() FROM generate_series(1, 5) g;
INSERT INTO twofactor_incomplete SELECT 'u' || g, 'd' || g, 'dev', now(), '127.0.0.1' FROM generate_series(1, 6) g;
INSERT INTO groups SELECT 'g' || g, 'o' || (g % 3 + 1), 'group', false, NULL, now(), now() FROM generate_series(1, 4) g;
INSERT INTO groups_users SELECT 'g' || (g % 4 + 1), 'uo' || g FROM generate_series(1, 10) g;
INSERT INTO collections_groups SELECT 'col' || g, 'g' || (g % 4 + 1), false, false FROM generate_series(1, 6) g;
INSERT INTO event (uuid, event_type, event_date) SELECT 'e' || g, 1000, now() FROM generate_series(1, 50) g;
INSERT INTO organization_api_key SELECT 'k' || g, 'o' || g, 0, 'key', now() FROM generate_series(1, 3) g;
INSERT INTO auth_requests (uuid, user_uuid, request_device_identifier, device_type, request_ip, access_code, public_key, enc_key, master_password_hash, creation_date)
SELECT 'ar' || g, 'u' || g, 'd' || g, 1, '127.0.0.1', 'c', 'pk', 'ek', 'h', now() FROM generate_series(1, 3) g;
INSERT INTO sso_nonce (nonce) SELECT 'n' || g FROM generate_series(1, 5) g;

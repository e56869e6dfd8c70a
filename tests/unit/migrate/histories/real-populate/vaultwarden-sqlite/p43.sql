-- SSO state, auth requests, organization API keys and events.
INSERT INTO sso_nonce (state, nonce, verifier, redirect_uri) VALUES ('st1', 'n1', 'v1', 'https://a/cb'), ('st2', 'n2', NULL, 'https://a/cb'), ('st3', 'n3', 'v3', 'https://b/cb');
INSERT INTO auth_requests (uuid, user_uuid, request_device_identifier, device_type, request_ip, access_code, public_key, creation_date)
VALUES ('ar1', 'u1', 'dev1', 1, '10.0.0.1', 'code', 'pk', '2023-07-01'), ('ar2', 'u2', 'dev2', 2, '10.0.0.2', 'code', 'pk', '2023-07-01');
INSERT INTO organization_api_key (uuid, org_uuid, atype, api_key, revision_date) VALUES ('ok1', 'o1', 0, 'key1', '2023-06-02'), ('ok2', 'o2', 0, 'key2', '2023-06-02');
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 10)
INSERT INTO event (uuid, event_type, user_uuid, org_uuid, event_date) SELECT 'ev' || n, 1000 + n, 'u' || n, 'o1', '2023-01-01' FROM g;

INSERT INTO sso_nonce (state, nonce, verifier, redirect_uri) SELECT 'st' || g, 'n' || g, 'v', 'https://x/cb' FROM generate_series(1, 3) g;
INSERT INTO sso_users (user_uuid, identifier) SELECT 'u' || g, 'id' || g FROM generate_series(1, 7) g;

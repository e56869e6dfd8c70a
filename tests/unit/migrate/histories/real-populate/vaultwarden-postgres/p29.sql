INSERT INTO sso_auth (state, client_challenge, nonce, redirect_uri) SELECT 'st' || g, 'cc', 'n', 'https://x/cb' FROM generate_series(1, 4) g;
INSERT INTO twofactor_duo_ctx SELECT 'duo' || g, 'user1@example.com', 'n', 1 FROM generate_series(1, 2) g;

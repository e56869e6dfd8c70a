INSERT INTO email_blocklist (email_address, note, notify_user, notification_text) SELECT 'spam' || g || '@x', 'n', false, '' FROM generate_series(1, 3) g;
INSERT INTO comment_seers (comment_id, user_id) SELECT g, g FROM generate_series(1, 6) g;

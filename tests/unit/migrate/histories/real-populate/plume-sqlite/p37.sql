-- The email blocklist, before its NOT NULL rebuild.
INSERT INTO email_blocklist (id, email_address, note, notify_user, notification_text) VALUES (1, 'spam@x', 'spam', 1, 'go away'), (2, '*@bad.example', 'domain', 0, '');

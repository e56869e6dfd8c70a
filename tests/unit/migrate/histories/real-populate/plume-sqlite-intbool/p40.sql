-- Email sign-ups.
INSERT INTO email_signups (email, token, expiration_date) VALUES ('new1@x', 'st1', '2030-01-01'), ('new2@x', 'st2', '2030-01-01');

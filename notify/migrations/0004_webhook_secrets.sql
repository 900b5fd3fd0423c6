-- Each customer's webhook has its own signing secret (Standard Webhooks, HMAC-SHA256), sealed
-- with FieldCipher like the chat URLs: notify must read it back to sign, so it cannot be a hash.
-- A new secret is made whenever the webhook URL is set or changed, or on request.
ALTER TABLE notify_profiles ADD COLUMN webhook_secret_enc bytea;

-- A rotated webhook secret stays valid until previous_webhook_secret_until:
-- deliveries are signed with both meanwhile, so a store can switch its
-- verifier to the new secret without losing a delivery.
ALTER TABLE stores ADD COLUMN previous_webhook_secret TEXT;
ALTER TABLE stores ADD COLUMN previous_webhook_secret_until BIGINT;

-- Charge-aware routing: a store's routing mode and what a review costs it
-- (NULL: from the labeler hourly cost and the usual handling time).
ALTER TABLE stores ADD COLUMN routing_mode TEXT NOT NULL DEFAULT 'threshold';
ALTER TABLE stores ADD COLUMN review_cost_cents BIGINT;

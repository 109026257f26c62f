-- A store's catalog version: a new value on every catalog upload, so an
-- instance may keep catalog rows in memory and know, from a column it
-- reads anyway with the task, whether they are still current
-- (docs/architecture.md, "Catalog cache").
ALTER TABLE stores ADD COLUMN catalog_version TEXT NOT NULL DEFAULT '';

-- Tenancy (docs/operations.md, "Tenancy"): the stores a person covers, as a
-- JSON array of store ids; NULL is every store. Admins always cover every
-- store; a supervisor sees only these stores, a labeler's queue hands them
-- only these stores' tasks.
ALTER TABLE users ADD COLUMN stores TEXT;

-- A write sent as one statement outside a transaction (a batch of
-- data-modifying WITH parts: docs/architecture.md, "Statements per
-- request") checks in the same statement that each part changed the rows
-- it expected: when one did not, this raises, the statement is aborted
-- whole and nothing of it is written. The SQLSTATE is Recount's own
-- (db::batch::EXPECTATION_FAILED), so callers tell it from any other error.
CREATE FUNCTION recount_expect(ok boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'a write changed other rows than it expected'
            USING ERRCODE = 'RC001';
    END IF;
    RETURN true;
END
$$;

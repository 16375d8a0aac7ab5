-- Runs first (pg_regress takes the tests in name order, in one database): creates
-- the extension and err(q), which runs q and shows the error it raises as
-- "SQLSTATE message | hint: ..." so expected files pin all three.
CREATE EXTENSION pgrec;
CREATE FUNCTION err(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ' ' || SQLERRM || CASE WHEN h <> '' THEN ' | hint: ' || h ELSE '' END;
END $f$;
SELECT extname, extversion FROM pg_extension WHERE extname = 'pgrec';

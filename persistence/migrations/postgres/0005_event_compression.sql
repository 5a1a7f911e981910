-- A queue event carries every waiting ticket's place and estimate: 2.5 KB on average in
-- the load test's mix, up to 7 KB, past the 2 KB at which Postgres compresses a value.
-- pglz compressing them was the largest single item of Postgres's own CPU under that
-- mix (7.7% of its samples); lz4, as for snapshots (0003), is several times cheaper.
-- Only values written from now on are affected. The same guards as 0003: the change
-- needs the table's exclusive lock for a moment, waits for it at most 5 s, and gives up
-- (to run again at the next start) rather than hold every append longer. On a fleet
-- still writing, those seconds of waiting appends put journals behind: deploy the
-- first node with this migration while writes are light.
SET LOCAL lock_timeout = '5s';
DO $$
BEGIN
    ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 not available: events stay compressed with pglz';
END
$$;

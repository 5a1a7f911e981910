-- navaro_ts and navaro_us were declared IMMUTABLE, but their bodies are only STABLE
-- (timestamptz arithmetic and extract depend on the TimeZone setting in general). The
-- planner inlines a SQL function only when its body is no more volatile than declared,
-- so it never inlined these: every call ran as a separate SQL-function execution (about
-- 2 µs against 0.3 µs inlined, on a million rows), three per row of the write group's
-- upsert. Declared STABLE they inline; no index or constraint uses them.
ALTER FUNCTION navaro_ts(bigint) STABLE;
ALTER FUNCTION navaro_us(timestamptz) STABLE;

-- The write group (0002) counted each call's inserted rows per establishment to find
-- the ones that lost a fencing race, a query with two aggregates and a join on every
-- call; it now does so only when some row was not inserted. Otherwise unchanged.
CREATE OR REPLACE FUNCTION navaro_write_group(
    ev_est uuid[], ev_seq int8[], ev_kind text[], ev_payload bytea[],
    it_id uuid[], it_est uuid[], it_kind text[], it_staff uuid[], it_customer uuid[],
    it_start int8[], it_end int8[], it_busy int8[], it_status text[], it_seq int8[],
    it_data bytea[],
    cv_est uuid[], cv_hold uuid[], cv_status text
) RETURNS uuid[]
LANGUAGE plpgsql AS $$
DECLARE
    ins_est uuid[];
    ins_seq int8[];
    losers uuid[];
BEGIN
    WITH ins AS (
        INSERT INTO events (establishment_id, seq, kind, payload)
        SELECT * FROM UNNEST(ev_est, ev_seq, ev_kind, ev_payload)
        ON CONFLICT DO NOTHING
        RETURNING establishment_id, seq
    )
    SELECT coalesce(array_agg(establishment_id), '{}'), coalesce(array_agg(seq), '{}')
    INTO ins_est, ins_seq
    FROM ins;

    -- An establishment with fewer rows inserted than it sent lost a conflict; when
    -- every row went in (nearly always), none did, and the count is not made.
    IF cardinality(ins_est) = cardinality(ev_est) THEN
        losers := '{}';
    ELSE
        SELECT coalesce(array_agg(w.est), '{}') INTO losers
        FROM (SELECT e AS est, count(*) AS n FROM UNNEST(ev_est) AS e GROUP BY e) w
        LEFT JOIN (SELECT e AS est, count(*) AS n FROM UNNEST(ins_est) AS e GROUP BY e) g
            USING (est)
        WHERE coalesce(g.n, 0) < w.n;
    END IF;

    IF cardinality(losers) > 0 THEN
        -- Only the rows this call inserted: the conflicting ones belong to the winner.
        DELETE FROM events e
        USING UNNEST(ins_est, ins_seq) AS d(est, seq)
        WHERE e.establishment_id = d.est AND e.seq = d.seq AND d.est = ANY (losers);
    END IF;

    IF cardinality(it_id) > 0 THEN
        INSERT INTO bookings (id, establishment_id, kind, staff_id, customer_id, start_at, end_at,
                              busy_until, status, seq, data)
        SELECT id, establishment_id, kind, staff_id, customer_id, navaro_ts(start_us),
               navaro_ts(end_us), navaro_ts(busy_us), status, seq, data
        FROM UNNEST(it_id, it_est, it_kind, it_staff, it_customer, it_start, it_end, it_busy,
                    it_status, it_seq, it_data)
             AS u(id, establishment_id, kind, staff_id, customer_id, start_us, end_us, busy_us,
                  status, seq, data)
        WHERE NOT (establishment_id = ANY (losers))
        ON CONFLICT (id) DO UPDATE SET
            staff_id = excluded.staff_id, customer_id = excluded.customer_id,
            start_at = excluded.start_at, end_at = excluded.end_at,
            busy_until = excluded.busy_until, status = excluded.status, seq = excluded.seq,
            data = excluded.data
        WHERE bookings.seq <= excluded.seq;
    END IF;

    IF cardinality(cv_hold) > 0 THEN
        -- `= ANY` rather than a join: the planner keeps to the primary key whatever it
        -- guessed of the arrays' sizes.
        UPDATE bookings SET status = cv_status
        WHERE kind = 'hold' AND id = ANY (ARRAY(
            SELECT c.hold FROM UNNEST(cv_est, cv_hold) AS c(est, hold)
            WHERE NOT (c.est = ANY (losers))));
    END IF;

    RETURN losers;
END
$$;

-- Snapshots are rewritten whole, hundreds of kilobytes for a busy establishment, and
-- pglz compressing them was a few percent of the server's CPU under a booking load;
-- lz4 is several times faster at both ends. Servers built without lz4 keep pglz. The
-- change locks the table: rather than queue every snapshot behind a long transaction,
-- the migration gives up after a few seconds and runs again at the next start.
SET LOCAL lock_timeout = '5s';
DO $$
BEGIN
    ALTER TABLE snapshots ALTER COLUMN state SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 not available: snapshots stay compressed with pglz';
END
$$;

-- One group commit in one round trip. The writer used to run BEGIN, the events insert,
-- (a delete), the read-model upsert, (an update) and COMMIT as separate statements: five
-- to seven round trips per group, each a wakeup of this server and of Postgres. Called
-- outside a transaction block, this function is its own transaction: everything below
-- commits together or not at all, and the deferred overlap constraint is checked at its
-- end, on the group's final state.
--
-- Arguments are the group's columns (UNNEST order). Returns the losers: establishments
-- some of whose events were already in the journal (a stale writer lost the fencing
-- race); none of their rows of the group are kept.
CREATE FUNCTION navaro_write_group(
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

    -- An establishment with fewer rows inserted than it sent lost a conflict.
    SELECT coalesce(array_agg(w.est), '{}') INTO losers
    FROM (SELECT e AS est, count(*) AS n FROM UNNEST(ev_est) AS e GROUP BY e) w
    LEFT JOIN (SELECT e AS est, count(*) AS n FROM UNNEST(ins_est) AS e GROUP BY e) g
        USING (est)
    WHERE coalesce(g.n, 0) < w.n;

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

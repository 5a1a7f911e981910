-- The cluster's fence (docs/cluster.md). Each establishment has at most one owning node
-- at a time; Redis says which node *should* own it, this table says which one *does*.
-- A node that takes an establishment over bumps its epoch here before it loads it, and
-- every group commit of a clustered node names the epoch it holds for each of its
-- establishments: `navaro_write_group_fenced` keeps only the rows of establishments
-- whose epoch is still current, in the same transaction as the write. So a paused,
-- partitioned or outvoted node can never commit (and never acknowledge) anything for an
-- establishment another node has claimed since, whatever the clocks or Redis say.
-- Single-node servers never touch this table and keep calling `navaro_write_group`.
CREATE TABLE owners (
    establishment_id uuid PRIMARY KEY,
    -- Bumped by every claim; never goes down.
    epoch            bigint NOT NULL,
    -- The claiming node's `cluster.node_id`, for operators and tests.
    node             text NOT NULL,
    claimed_at       timestamptz NOT NULL DEFAULT now()
);

-- A group commit behind the epoch fence. `fe_est`/`fe_epoch` name the epoch the writer
-- holds for each establishment of the group (one entry each); the other arguments are
-- `navaro_write_group`'s (0002, as redefined by 0003), which this calls unchanged on the
-- rows of the establishments whose epoch is current. Returns those that lost (a stale
-- epoch, or a seq conflict as before); none of their rows of the group are kept.
--
-- The owners rows are read FOR SHARE: a claim (an UPDATE of the row) waits until this
-- transaction ends, and this read waits for a claim in progress and then sees its new
-- epoch. Either the write commits before the claim (and the claimer's load, which comes
-- after its claim, sees it) or the claim commits first and the write is refused: never
-- both owners' rows in the journal.
CREATE FUNCTION navaro_write_group_fenced(
    fe_est uuid[], fe_epoch int8[],
    ev_est uuid[], ev_seq int8[], ev_kind text[], ev_payload bytea[],
    it_id uuid[], it_est uuid[], it_kind text[], it_staff uuid[], it_customer uuid[],
    it_start int8[], it_end int8[], it_busy int8[], it_status text[], it_seq int8[],
    it_data bytea[],
    cv_est uuid[], cv_hold uuid[], cv_status text
) RETURNS uuid[]
LANGUAGE plpgsql AS $$
DECLARE
    stale uuid[];
BEGIN
    SELECT coalesce(array_agg(f.est), '{}') INTO stale
    FROM UNNEST(fe_est, fe_epoch) AS f(est, epoch)
    LEFT JOIN (
        SELECT o.establishment_id, o.epoch FROM owners o
        WHERE o.establishment_id = ANY (fe_est)
        ORDER BY o.establishment_id
        FOR SHARE
    ) cur ON cur.establishment_id = f.est
    WHERE cur.epoch IS DISTINCT FROM f.epoch;

    IF cardinality(stale) > 0 THEN
        -- Drop the stale establishments' rows, keeping the others in their order.
        SELECT coalesce(array_agg(u.e ORDER BY u.i), '{}'),
               coalesce(array_agg(u.s ORDER BY u.i), '{}'),
               coalesce(array_agg(u.k ORDER BY u.i), '{}'),
               coalesce(array_agg(u.p ORDER BY u.i), '{}')
        INTO ev_est, ev_seq, ev_kind, ev_payload
        FROM UNNEST(ev_est, ev_seq, ev_kind, ev_payload) WITH ORDINALITY AS u(e, s, k, p, i)
        WHERE NOT (u.e = ANY (stale));

        SELECT coalesce(array_agg(u.id ORDER BY u.i), '{}'),
               coalesce(array_agg(u.est ORDER BY u.i), '{}'),
               coalesce(array_agg(u.kind ORDER BY u.i), '{}'),
               coalesce(array_agg(u.staff ORDER BY u.i), '{}'),
               coalesce(array_agg(u.customer ORDER BY u.i), '{}'),
               coalesce(array_agg(u.start_us ORDER BY u.i), '{}'),
               coalesce(array_agg(u.end_us ORDER BY u.i), '{}'),
               coalesce(array_agg(u.busy_us ORDER BY u.i), '{}'),
               coalesce(array_agg(u.status ORDER BY u.i), '{}'),
               coalesce(array_agg(u.seq ORDER BY u.i), '{}'),
               coalesce(array_agg(u.data ORDER BY u.i), '{}')
        INTO it_id, it_est, it_kind, it_staff, it_customer, it_start, it_end, it_busy,
             it_status, it_seq, it_data
        FROM UNNEST(it_id, it_est, it_kind, it_staff, it_customer, it_start, it_end, it_busy,
                    it_status, it_seq, it_data) WITH ORDINALITY
             AS u(id, est, kind, staff, customer, start_us, end_us, busy_us, status, seq, data, i)
        WHERE NOT (u.est = ANY (stale));

        SELECT coalesce(array_agg(u.e ORDER BY u.i), '{}'),
               coalesce(array_agg(u.h ORDER BY u.i), '{}')
        INTO cv_est, cv_hold
        FROM UNNEST(cv_est, cv_hold) WITH ORDINALITY AS u(e, h, i)
        WHERE NOT (u.e = ANY (stale));
    END IF;

    RETURN navaro_write_group(ev_est, ev_seq, ev_kind, ev_payload,
                              it_id, it_est, it_kind, it_staff, it_customer,
                              it_start, it_end, it_busy, it_status, it_seq, it_data,
                              cv_est, cv_hold, cv_status) || stale;
END
$$;

"""The PL/pgSQL functions of the PostgreSQL store, by the schema version that created them.

A migration's statements must never change once released (existing databases ran them), so each
version of a function is a constant of its own: ``COMMIT_FUNCTION_V1`` (schema 1, 8 arguments) stays
installed next to ``COMMIT_FUNCTION_V2`` (schema 2, 10 arguments: it also writes the metrics
history), so a worker of the previous release keeps committing during a rolling upgrade.
"""

from __future__ import annotations

__all__ = ["APPEND_FUNCTION", "COMMIT_FUNCTION_V1", "COMMIT_FUNCTION_V2"]

COMMIT_FUNCTION_V1 = """
CREATE FUNCTION gk_commit(p_goal text, p_expected bigint, p_snapshot text, p_now double precision,
    p_events text[], p_sids text[], p_payloads text[], p_keep bigint)
RETURNS TABLE (o_committed boolean, o_version bigint, o_dup_events text[], o_dup_sids text[])
LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
    v_inbox bigint;
    v_dup_events text[];
    v_dup_sids text[];
BEGIN
    SELECT g.version, g.inbox_n INTO v_version, v_inbox FROM gk_goals g WHERE g.goal_id = p_goal FOR UPDATE;
    IF NOT FOUND THEN
        IF p_expected <> 0 THEN
            RETURN QUERY SELECT false, 0::bigint, NULL::text[], NULL::text[];
            RETURN;
        END IF;
        -- A concurrent first commit of the same goal makes this insert wait, then do nothing.
        INSERT INTO gk_goals (goal_id, version, snapshot, updated_at, inbox_n)
            VALUES (p_goal, 0, '', p_now, 0) ON CONFLICT (goal_id) DO NOTHING;
        IF NOT FOUND THEN
            SELECT g.version INTO v_version FROM gk_goals g WHERE g.goal_id = p_goal;
            RETURN QUERY SELECT false, v_version, NULL::text[], NULL::text[];
            RETURN;
        END IF;
        v_version := 0;
        v_inbox := 0;
    ELSIF v_version <> p_expected THEN
        RETURN QUERY SELECT false, v_version, NULL::text[], NULL::text[];
        RETURN;
    END IF;
    SELECT coalesce(array_agg(i.event_id), '{}') INTO v_dup_events
        FROM gk_inbox i WHERE i.goal_id = p_goal AND i.event_id = ANY(p_events);
    INSERT INTO gk_inbox (goal_id, event_id, seq)
        SELECT p_goal, e.id, v_inbox + row_number() OVER (ORDER BY e.n)
        FROM unnest(p_events) WITH ORDINALITY AS e(id, n) WHERE e.id <> ALL(v_dup_events);
    IF cardinality(p_events) > cardinality(v_dup_events) THEN
        v_inbox := v_inbox + cardinality(p_events) - cardinality(v_dup_events);
        IF v_inbox > p_keep THEN
            DELETE FROM gk_inbox i WHERE i.goal_id = p_goal AND i.seq <= v_inbox - p_keep;
        END IF;
    END IF;
    SELECT coalesce(array_agg(o.suggestion_id), '{}') INTO v_dup_sids
        FROM gk_outbox o WHERE o.suggestion_id = ANY(p_sids);
    INSERT INTO gk_outbox (suggestion_id, goal_id, version, payload, created_at)
        SELECT s.id, p_goal, v_version + 1, s.payload, p_now
        FROM unnest(p_sids, p_payloads) WITH ORDINALITY AS s(id, payload, n)
        WHERE s.id <> ALL(v_dup_sids) ORDER BY s.n
        ON CONFLICT (suggestion_id) DO NOTHING;
    UPDATE gk_goals g SET version = v_version + 1, snapshot = p_snapshot, updated_at = p_now,
        inbox_n = v_inbox WHERE g.goal_id = p_goal;
    RETURN QUERY SELECT true, v_version + 1, v_dup_events, v_dup_sids;
END $$
"""

COMMIT_FUNCTION_V2 = """
CREATE FUNCTION gk_commit(p_goal text, p_expected bigint, p_snapshot text, p_now double precision,
    p_events text[], p_sids text[], p_payloads text[], p_keep bigint, p_metrics text[], p_mkeep bigint)
RETURNS TABLE (o_committed boolean, o_version bigint, o_dup_events text[], o_dup_sids text[],
    o_metrics_n bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
    v_inbox bigint;
    v_metrics bigint;
    v_dup_events text[];
    v_dup_sids text[];
BEGIN
    SELECT g.version, g.inbox_n, g.metrics_n INTO v_version, v_inbox, v_metrics
        FROM gk_goals g WHERE g.goal_id = p_goal FOR UPDATE;
    IF NOT FOUND THEN
        IF p_expected <> 0 THEN
            RETURN QUERY SELECT false, 0::bigint, NULL::text[], NULL::text[], 0::bigint;
            RETURN;
        END IF;
        -- A concurrent first commit of the same goal makes this insert wait, then do nothing.
        INSERT INTO gk_goals (goal_id, version, snapshot, updated_at, inbox_n)
            VALUES (p_goal, 0, '', p_now, 0) ON CONFLICT (goal_id) DO NOTHING;
        IF NOT FOUND THEN
            SELECT g.version INTO v_version FROM gk_goals g WHERE g.goal_id = p_goal;
            RETURN QUERY SELECT false, v_version, NULL::text[], NULL::text[], 0::bigint;
            RETURN;
        END IF;
        v_version := 0;
        v_inbox := 0;
        v_metrics := 0;
    ELSIF v_version <> p_expected THEN
        RETURN QUERY SELECT false, v_version, NULL::text[], NULL::text[], 0::bigint;
        RETURN;
    END IF;
    SELECT coalesce(array_agg(i.event_id), '{}') INTO v_dup_events
        FROM gk_inbox i WHERE i.goal_id = p_goal AND i.event_id = ANY(p_events);
    INSERT INTO gk_inbox (goal_id, event_id, seq)
        SELECT p_goal, e.id, v_inbox + row_number() OVER (ORDER BY e.n)
        FROM unnest(p_events) WITH ORDINALITY AS e(id, n) WHERE e.id <> ALL(v_dup_events);
    IF cardinality(p_events) > cardinality(v_dup_events) THEN
        v_inbox := v_inbox + cardinality(p_events) - cardinality(v_dup_events);
        IF v_inbox > p_keep THEN
            DELETE FROM gk_inbox i WHERE i.goal_id = p_goal AND i.seq <= v_inbox - p_keep;
        END IF;
    END IF;
    SELECT coalesce(array_agg(o.suggestion_id), '{}') INTO v_dup_sids
        FROM gk_outbox o WHERE o.suggestion_id = ANY(p_sids);
    INSERT INTO gk_outbox (suggestion_id, goal_id, version, payload, created_at)
        SELECT s.id, p_goal, v_version + 1, s.payload, p_now
        FROM unnest(p_sids, p_payloads) WITH ORDINALITY AS s(id, payload, n)
        WHERE s.id <> ALL(v_dup_sids) ORDER BY s.n
        ON CONFLICT (suggestion_id) DO NOTHING;
    IF cardinality(p_metrics) > 0 THEN
        INSERT INTO gk_metrics (goal_id, seq, point, created_at)
            SELECT p_goal, v_metrics + m.n, m.point, p_now
            FROM unnest(p_metrics) WITH ORDINALITY AS m(point, n);
        v_metrics := v_metrics + cardinality(p_metrics);
        IF v_metrics > p_mkeep THEN
            DELETE FROM gk_metrics m WHERE m.goal_id = p_goal AND m.seq <= v_metrics - p_mkeep;
        END IF;
    END IF;
    UPDATE gk_goals g SET version = v_version + 1, snapshot = p_snapshot, updated_at = p_now,
        inbox_n = v_inbox, metrics_n = v_metrics WHERE g.goal_id = p_goal;
    RETURN QUERY SELECT true, v_version + 1, v_dup_events, v_dup_sids, v_metrics;
END $$
"""

APPEND_FUNCTION = """
CREATE FUNCTION gk_append(p_goal text, p_ids text[], p_payloads text[], p_now double precision)
RETURNS TABLE (o_event_id text, o_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_last bigint;
    v_count bigint;
BEGIN
    -- The upsert locks the goal's log head, so concurrent appends to one goal queue up here and
    -- sequence numbers stay gap-free.
    INSERT INTO gk_log_heads AS h (goal_id, last_seq) VALUES (p_goal, 0)
        ON CONFLICT (goal_id) DO UPDATE SET last_seq = h.last_seq RETURNING h.last_seq INTO v_last;
    RETURN QUERY
        WITH fresh AS (
            SELECT e.id, e.payload, row_number() OVER (ORDER BY e.n) AS k
            FROM unnest(p_ids, p_payloads) WITH ORDINALITY AS e(id, payload, n)
            WHERE NOT EXISTS (SELECT 1 FROM gk_events x WHERE x.goal_id = p_goal AND x.event_id = e.id)
        ), ins AS (
            INSERT INTO gk_events (goal_id, seq, event_id, payload, appended_at)
            SELECT p_goal, v_last + f.k, f.id, f.payload, p_now FROM fresh f
            RETURNING gk_events.event_id, gk_events.seq
        )
        SELECT ins.event_id, ins.seq FROM ins;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    UPDATE gk_log_heads h SET last_seq = v_last + v_count WHERE h.goal_id = p_goal;
END $$
"""

-- A command may be decided on the state an earlier command of the same
-- account left while that append is still in flight (the command service
-- pipelines one account's commands), and its append then follows a version
-- that is not committed yet. Checking only that the version before exists
-- is not enough: if the earlier append fails because another writer (a
-- second command-service instance) took that version first, the version
-- exists, but it is not the event the command was decided on, and the
-- command must not commit. So each event may name the event it follows
-- (ev_after, the event_id of the version before it; NULL: any stored
-- event, for appends that follow a committed version). The checks below
-- compare it with the stored event, in the fast path for the first version
-- of each stream in the batch, and command by command in the slow path;
-- a mismatch is a 'conflict', like a gap. As in 003, each check is a
-- scalar subquery, which probes the (stream_id, stream_version) index per
-- stream: written as a join (even LATERAL, which the planner flattens), the
-- cached plan made on a small table scans the whole events table per batch
-- (measured: the append's PostgreSQL time per deposit went from about 55 to
-- 140-315 microseconds).
--
-- This adds an overload; the one of 003 stays for instances of the previous
-- version during a rolling upgrade.
CREATE FUNCTION append_commands(
  ev_command integer[], ev_event_id uuid[], ev_stream_id uuid[],
  ev_version bigint[], ev_type text[], ev_schema integer[], ev_data jsonb[],
  ev_metadata jsonb[], cmd_id text[], cmd_type text[], cmd_request bytea[],
  ev_after uuid[])
RETURNS TABLE (command_index integer, outcome text, stream_id uuid,
               stream_version bigint, event_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
  i integer;
  failed text;
  out_streams uuid[];
  out_versions bigint[];
  out_positions bigint[];
  out_commands integer[];
BEGIN
  -- Fast path. Each stream's versions in the batch are contiguous and its
  -- first one follows a stored event.
  IF NOT EXISTS (
    SELECT 1
    FROM (SELECT e.s, min(e.v) AS lo, max(e.v) AS hi, count(*) AS n,
                 (array_agg(e.a ORDER BY e.v))[1] AS after
          FROM unnest(ev_stream_id, ev_version, ev_after) AS e(s, v, a)
          GROUP BY e.s) f
    WHERE f.hi - f.lo + 1 <> f.n
       OR (f.lo > 1 AND (SELECT x.event_id = coalesce(f.after, x.event_id)
                         FROM events x
                         WHERE x.stream_id = f.s
                           AND x.stream_version = f.lo - 1) IS NOT TRUE)
  ) THEN
    BEGIN
      WITH input AS (
        SELECT e.c, e.event_id, e.stream_id, e.stream_version, e.event_type,
               e.schema_version, e.data, e.metadata, e.ord
        FROM unnest(ev_command, ev_event_id, ev_stream_id, ev_version, ev_type,
                    ev_schema, ev_data, ev_metadata)
             WITH ORDINALITY
             AS e(c, event_id, stream_id, stream_version, event_type,
                  schema_version, data, metadata, ord)
      ), inserted AS (
        INSERT INTO events (event_id, stream_id, stream_version, event_type,
                            schema_version, data, metadata)
        SELECT n.event_id, n.stream_id, n.stream_version, n.event_type,
               n.schema_version, n.data, n.metadata
        FROM input n ORDER BY n.ord
        RETURNING events.position, events.stream_id, events.stream_version
      ), last AS (
        SELECT DISTINCT ON (n.c, r.stream_id) n.c, r.stream_id,
               r.stream_version, r.position
        FROM inserted r
        JOIN input n ON n.stream_id = r.stream_id
                    AND n.stream_version = r.stream_version
        ORDER BY n.c, r.stream_id, r.stream_version DESC
      ), recorded AS (
        INSERT INTO commands (command_id, request_type, request, result)
        SELECT cmd_id[l.c], cmd_type[l.c], cmd_request[l.c],
               jsonb_agg(jsonb_build_object('stream_id', l.stream_id,
                                            'version', l.stream_version,
                                            'position', l.position)
                         ORDER BY l.stream_id)
        FROM last l
        WHERE cmd_id[l.c] <> ''
        GROUP BY l.c
      )
      SELECT array_agg(l.c), array_agg(l.stream_id), array_agg(l.stream_version),
             array_agg(l.position)
      INTO out_commands, out_streams, out_versions, out_positions
      FROM last l;
      RETURN QUERY
      SELECT o.c, 'ok'::text, o.s, o.v, o.p
      FROM unnest(out_commands, out_streams, out_versions, out_positions)
           AS o(c, s, v, p)
      ORDER BY o.c;
      RETURN;
    EXCEPTION WHEN unique_violation OR serialization_failure THEN
      NULL;  -- Rolled back; sort it out command by command below.
    END;
  END IF;

  FOR i IN 1 .. coalesce(array_length(cmd_id, 1), 0) LOOP
    -- Gap guard: each stream's first new version follows a stored event,
    -- the one it names if it names one.
    IF EXISTS (
      SELECT 1
      FROM (SELECT e.s, min(e.v) AS v, (array_agg(e.a ORDER BY e.v))[1] AS after
            FROM unnest(ev_command, ev_stream_id, ev_version, ev_after)
                 AS e(c, s, v, a)
            WHERE e.c = i GROUP BY e.s) f
      WHERE f.v > 1
        AND (SELECT x.event_id = coalesce(f.after, x.event_id)
             FROM events x
             WHERE x.stream_id = f.s AND x.stream_version = f.v - 1) IS NOT TRUE
    ) THEN
      RETURN QUERY SELECT i, 'conflict'::text, NULL::uuid, NULL::bigint, NULL::bigint;
      CONTINUE;
    END IF;
    BEGIN
      WITH input AS (
        SELECT e.event_id, e.stream_id, e.stream_version, e.event_type,
               e.schema_version, e.data, e.metadata, e.ord
        FROM unnest(ev_command, ev_event_id, ev_stream_id, ev_version, ev_type,
                    ev_schema, ev_data, ev_metadata)
             WITH ORDINALITY
             AS e(c, event_id, stream_id, stream_version, event_type,
                  schema_version, data, metadata, ord)
        WHERE e.c = i
      ), inserted AS (
        INSERT INTO events (event_id, stream_id, stream_version, event_type,
                            schema_version, data, metadata)
        SELECT n.event_id, n.stream_id, n.stream_version, n.event_type,
               n.schema_version, n.data, n.metadata
        FROM input n ORDER BY n.ord
        RETURNING events.position, events.stream_id, events.stream_version
      ), last AS (
        SELECT DISTINCT ON (r.stream_id) r.stream_id, r.stream_version, r.position
        FROM inserted r ORDER BY r.stream_id, r.stream_version DESC
      ), command AS (
        INSERT INTO commands (command_id, request_type, request, result)
        SELECT cmd_id[i], cmd_type[i], cmd_request[i],
               (SELECT jsonb_agg(jsonb_build_object('stream_id', l.stream_id,
                                                    'version', l.stream_version,
                                                    'position', l.position))
                FROM last l)
        WHERE cmd_id[i] <> ''
      )
      SELECT array_agg(l.stream_id), array_agg(l.stream_version),
             array_agg(l.position)
      INTO out_streams, out_versions, out_positions
      FROM last l;
    EXCEPTION WHEN unique_violation OR serialization_failure THEN
      -- Only this command's subtransaction is rolled back.
      GET STACKED DIAGNOSTICS failed = CONSTRAINT_NAME;
      RETURN QUERY SELECT i,
        CASE WHEN failed = 'commands_pkey' THEN 'duplicate' ELSE 'conflict' END,
        NULL::uuid, NULL::bigint, NULL::bigint;
      CONTINUE;
    END;
    -- Reported only once every statement of the command has completed.
    RETURN QUERY
    SELECT i, 'ok'::text, o.s, o.v, o.p
    FROM unnest(out_streams, out_versions, out_positions) AS o(s, v, p);
  END LOOP;
END;
$$;

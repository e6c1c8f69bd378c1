-- Group commit: the appends of many commands in one transaction (one round
-- trip, one commit, one WAL flush), each command still all-or-nothing and
-- independent of its neighbours.
--
-- Input: per event, the 1-based index of its command in the batch and the
-- event's columns; per command, its idempotency record (command_id '' when
-- none). Output, per command in order: 'ok' with one row per stream (its last
-- version and position), 'conflict' (a stream is not at the expected version:
-- another writer got there first, or the version before the first new event is
-- missing), or 'duplicate' (command_id recorded already). A command that fails
-- leaves nothing behind; the others are not affected.
--
-- Fast path: the whole batch as one multi-row insert of the events and one of
-- the command records, when no stream has a gap and nothing collides. Else
-- (rare: a concurrent writer, a retried command_id) the fast path is rolled
-- back and each command runs in its own subtransaction (EXCEPTION block).
-- The gap checks probe the (stream_id, stream_version) index with scalar
-- subqueries: an EXISTS here may be planned as a hashed subplan, a sequential
-- scan of the whole table, when the cached plan was made on a small table.
-- Run it at REPEATABLE READ (the event store's connections default to it):
-- every statement then sees the snapshot taken before the transaction got
-- its id, so whatever a command builds on was committed by a transaction with
-- a smaller id, the order readers follow (001). At READ COMMITTED the slow
-- path could build on a commit made after its own id was assigned.
-- Callers keep batches to at most 32 commands, below the 64 subtransactions a
-- backend caches before snapshots overflow to pg_subtrans for every reader.
CREATE FUNCTION append_commands(
  ev_command integer[], ev_event_id uuid[], ev_stream_id uuid[],
  ev_version bigint[], ev_type text[], ev_schema integer[], ev_data jsonb[],
  ev_metadata jsonb[], cmd_id text[], cmd_type text[], cmd_request bytea[])
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
    FROM (SELECT e.s, min(e.v) AS lo, max(e.v) AS hi, count(*) AS n
          FROM unnest(ev_stream_id, ev_version) AS e(s, v) GROUP BY e.s) f
    WHERE f.hi - f.lo + 1 <> f.n
       OR (f.lo > 1 AND (SELECT x.stream_version FROM events x
                         WHERE x.stream_id = f.s
                           AND x.stream_version = f.lo - 1) IS NULL)
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
    -- Gap guard: each stream's first new version follows a stored event.
    IF EXISTS (
      SELECT 1
      FROM (SELECT e.s, min(e.v) AS v
            FROM unnest(ev_command, ev_stream_id, ev_version) AS e(c, s, v)
            WHERE e.c = i GROUP BY e.s) f
      WHERE f.v > 1
        AND (SELECT x.stream_version FROM events x
             WHERE x.stream_id = f.s AND x.stream_version = f.v - 1) IS NULL
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

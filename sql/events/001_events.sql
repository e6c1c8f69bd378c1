-- The write database: the append-only event store.
--
-- Reading rule (gap-free tailing). Positions come from an identity sequence and
-- are handed out before commit, so transactions commit out of position order:
-- a reader that only remembers "the last position I saw" can skip an event
-- that commits late with a lower position. Each event therefore records the
-- id of the transaction that wrote it (transaction_id = pg_current_xact_id()).
-- A reader
--   1. reads only rows with transaction_id < pg_snapshot_xmin(pg_current_snapshot()),
--      i.e. written by transactions that are all finished (committed or not);
--   2. orders and checkpoints by (transaction_id, position).
-- Every transaction below the snapshot's xmin has ended, so no row can later
-- appear behind the checkpoint. The price: a long-running transaction anywhere
-- on the server holds readers back until it ends (set statement and
-- idle-in-transaction timeouts).

CREATE TABLE events (
  position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id        uuid        NOT NULL,
  stream_id       uuid        NOT NULL,
  stream_version  bigint      NOT NULL CHECK (stream_version >= 1),
  event_type      text        NOT NULL CHECK (event_type <> ''),
  schema_version  integer     NOT NULL CHECK (schema_version >= 1),
  data            jsonb       NOT NULL,
  metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
  transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT events_event_id_key UNIQUE (event_id),
  -- The guard against concurrent writers: two appends at the same version of
  -- one stream cannot both commit (SQLSTATE 23505).
  CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

-- The tailing order (see above).
CREATE INDEX events_transaction_position_idx ON events (transaction_id, position);

-- Events are facts: the database itself refuses to change or remove them.
CREATE FUNCTION events_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'permission denied: events are append-only, % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_no_update_delete
  BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION events_reject_change();

CREATE TRIGGER events_no_truncate
  BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

-- A wake-up call for readers, once per inserting statement (not per row), with
-- an empty payload: the notification carries no data, readers always catch up
-- from their checkpoint, so a lost notification costs latency, never events.
CREATE FUNCTION events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bank_events', '');
  RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify_after_insert
  AFTER INSERT ON events
  FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- Idempotency: the result of every command that carried a command_id, stored
-- in the same statement as its events. request holds the deterministic
-- encoding of the request, so a reused id with another request is detected.
CREATE TABLE commands (
  command_id   text        PRIMARY KEY CHECK (command_id <> ''),
  request_type text        NOT NULL,
  request      bytea       NOT NULL,
  -- [{"stream_id": ..., "version": ..., "position": ...}, ...] in request order.
  result       jsonb       NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- The latest snapshot of each stream: a cache of the fold, never the truth.
-- A snapshot whose schema_version is not the current one is ignored.
CREATE TABLE snapshots (
  stream_id      uuid        PRIMARY KEY,
  stream_version bigint      NOT NULL CHECK (stream_version >= 1),
  schema_version integer     NOT NULL,
  state          jsonb       NOT NULL,
  taken_at       timestamptz NOT NULL DEFAULT now()
);

-- The stream order (QueryService.StreamEntries): each history row carries
-- the event store's transaction_id of its event, so that the rows can be read
-- in the order the projector applied them, (transaction_id, position), the
-- event store's tailing order (sql/events/001_events.sql). Every row at or
-- below the live checkpoint is committed, and the projector only adds rows
-- after it, so a reader that follows this order up to the checkpoint it
-- reads in the same snapshot cannot skip a row (docs/architecture.md).
--
-- Rows projected before this migration get 0: they come first, in position
-- order, which is a fixed order of rows that no longer change; a
-- `projector --rebuild` gives them their true transaction ids.
ALTER TABLE account_history ADD COLUMN transaction_id bigint NOT NULL DEFAULT 0;
CREATE INDEX account_history_stream_idx
  ON account_history (transaction_id, position);

-- apply_batch (003) with one more array, each history row's transaction_id.
DROP FUNCTION apply_batch(
  text, bigint, bigint, bigint, bigint, bigint, bigint,
  uuid[], text[], text[], bigint[], bigint[], smallint[], bigint[], bigint[],
  bigint[], uuid[], bigint[], smallint[], bigint[], bigint[], bigint[],
  text[], bigint[], bigint[], uuid[], text[], text[], text, text[]);
CREATE FUNCTION apply_batch(
  p_projection text, p_expected_tx bigint, p_expected_position bigint,
  p_expected_applied bigint, p_tx bigint, p_position bigint, p_applied bigint,
  b_id uuid[], b_owner text[], b_currency text[], b_balance bigint[],
  b_version bigint[], b_status smallint[], b_opened_us bigint[],
  b_updated_us bigint[], b_last_position bigint[],
  h_id uuid[], h_version bigint[], h_kind smallint[], h_amount bigint[],
  h_balance_after bigint[], h_occurred_us bigint[], h_counterparty text[],
  h_position bigint[], h_tx bigint[],
  x_position bigint[], x_stream uuid[], x_type text[], x_error text[],
  p_channel text, p_notices text[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  stored projection_checkpoints%ROWTYPE;
  notice text;
BEGIN
  SELECT * INTO stored FROM projection_checkpoints
  WHERE projection = p_projection FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'checkpoint row of % is missing', p_projection
      USING ERRCODE = 'serialization_failure';
  END IF;
  IF stored.transaction_id <> p_expected_tx
     OR stored.position <> p_expected_position
     OR stored.events_applied <> p_expected_applied THEN
    RAISE EXCEPTION 'checkpoint of % moved to %/% after % events (expected %/% after %)',
      p_projection, stored.transaction_id, stored.position,
      stored.events_applied, p_expected_tx, p_expected_position,
      p_expected_applied
      USING ERRCODE = 'serialization_failure';
  END IF;

  INSERT INTO account_balances AS b
    (account_id, owner, currency, balance, version, status, opened_at,
     updated_at, last_position)
  SELECT id, owner, currency, balance, version, status,
         'epoch'::timestamptz + opened_us * interval '1 microsecond',
         'epoch'::timestamptz + updated_us * interval '1 microsecond',
         last_position
  FROM unnest(b_id, b_owner, b_currency, b_balance, b_version, b_status,
              b_opened_us, b_updated_us, b_last_position)
       AS t(id, owner, currency, balance, version, status, opened_us,
            updated_us, last_position)
  ON CONFLICT (account_id) DO UPDATE
    SET owner = EXCLUDED.owner, currency = EXCLUDED.currency,
        balance = EXCLUDED.balance, version = EXCLUDED.version,
        status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
        last_position = EXCLUDED.last_position
    WHERE b.version < EXCLUDED.version;

  INSERT INTO account_history
    (account_id, version, kind, amount, balance_after, occurred_at,
     counterparty_account_id, position, transaction_id)
  SELECT id, version, kind, amount, balance_after,
         'epoch'::timestamptz + occurred_us * interval '1 microsecond',
         NULLIF(counterparty, '')::uuid, position, tx
  FROM unnest(h_id, h_version, h_kind, h_amount, h_balance_after,
              h_occurred_us, h_counterparty, h_position, h_tx)
       AS t(id, version, kind, amount, balance_after, occurred_us,
            counterparty, position, tx)
  ON CONFLICT (account_id, version) DO NOTHING;

  IF cardinality(x_position) > 0 THEN
    INSERT INTO poison_events (position, stream_id, event_type, error)
    SELECT * FROM unnest(x_position, x_stream, x_type, x_error)
    ON CONFLICT (position) DO NOTHING;
  END IF;

  UPDATE projection_checkpoints
  SET transaction_id = p_tx, position = p_position,
      events_applied = events_applied + p_applied, updated_at = now()
  WHERE projection = p_projection;

  FOREACH notice IN ARRAY p_notices LOOP
    PERFORM pg_notify(p_channel, notice);
  END LOOP;
  RETURN p_expected_applied + p_applied;
END;
$$;

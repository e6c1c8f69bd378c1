-- The read database: the projection of the event store that QueryService reads.
-- Owned and written by the projector only.

CREATE TABLE account_balances (
  account_id    uuid        PRIMARY KEY,
  owner         text        NOT NULL,
  currency      text        NOT NULL,
  balance       bigint      NOT NULL,
  version       bigint      NOT NULL,
  status        smallint    NOT NULL,  -- bank.v1.AccountStatus
  opened_at     timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  last_position bigint      NOT NULL
);

CREATE TABLE account_history (
  account_id              uuid        NOT NULL,
  version                 bigint      NOT NULL,
  kind                    smallint    NOT NULL,  -- bank.v1.EntryKind
  amount                  bigint      NOT NULL,
  balance_after           bigint      NOT NULL,
  occurred_at             timestamptz NOT NULL,
  counterparty_account_id uuid,
  position                bigint      NOT NULL,
  PRIMARY KEY (account_id, version)
);

-- as_of: the last entry of an account at or before an instant.
CREATE INDEX account_history_occurred_idx
  ON account_history (account_id, occurred_at, version);

-- How far each projection has read the event store, in the event store's
-- tailing order (transaction_id, position); see sql/events/001_events.sql.
CREATE TABLE projection_checkpoints (
  projection     text        PRIMARY KEY,
  transaction_id bigint      NOT NULL,
  position       bigint      NOT NULL,
  events_applied bigint      NOT NULL DEFAULT 0,
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Events the projector skipped by explicit policy (--skip-poison), with why.
CREATE TABLE poison_events (
  position    bigint      PRIMARY KEY,
  stream_id   uuid,
  event_type  text,
  error       text        NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now()
);

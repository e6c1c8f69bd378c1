-- Consumer groups (QueryService.Consume; docs/architecture.md, "Consumer
-- groups"). The query-service replicas are stateless: a group's state lives
-- here, and they coordinate through it.
--
-- A group splits the accounts into partition_count partitions (a stable hash
-- of the account id, fixed when the group is created). Each partition has at
-- most one owner, a generation that grows each time its owner changes (an
-- acknowledgement delivered under an older generation moves nothing), and
-- the group's progress in it: every entry of the partition at or before
-- (transaction_id, position), in the stream order, was acknowledged. Members
-- hold their name by a lease that the replica serving them renews; a member
-- whose lease ran out is gone, and its partitions go to the others.
CREATE TABLE consumer_groups (
  group_name text PRIMARY KEY,
  partition_count integer NOT NULL CHECK (partition_count BETWEEN 1 AND 4096),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consumer_group_partitions (
  group_name text NOT NULL REFERENCES consumer_groups ON DELETE CASCADE,
  partition integer NOT NULL CHECK (partition >= 0),
  owner text,
  generation bigint NOT NULL DEFAULT 0,
  transaction_id bigint NOT NULL,
  position bigint NOT NULL,
  -- How far entries were delivered (under any generation): a new owner
  -- counts what it delivers up to here as redelivered.
  delivered_transaction_id bigint NOT NULL DEFAULT 0,
  delivered_position bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (group_name, partition)
);

CREATE TABLE consumer_group_members (
  group_name text NOT NULL REFERENCES consumer_groups ON DELETE CASCADE,
  member text NOT NULL,
  -- The connection that holds the name: another one is refused while the
  -- lease runs.
  session text NOT NULL,
  lease_until timestamptz NOT NULL,
  PRIMARY KEY (group_name, member)
);

-- The query service keeps the groups: it writes these tables, and only
-- these.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bank_query') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE
      ON consumer_groups, consumer_group_partitions, consumer_group_members
      TO bank_query;
  END IF;
END
$$;

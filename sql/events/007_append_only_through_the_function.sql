-- The append function is the only way into the event store. With INSERT on
-- events, a role could name its own transaction_id (or, with OVERRIDING
-- SYSTEM VALUE, its own position, and its own recorded_at): a row written
-- below the projector's checkpoint would never be projected, and the read
-- model would silently disagree with the store. So the command service's
-- role loses INSERT on events and commands, and append_commands runs as the
-- schema's owner (SECURITY DEFINER, with a fixed search_path), where every
-- row takes the column defaults: pg_current_xact_id(), the identity, now().
-- Only the command service's role may call it.
ALTER FUNCTION append_commands(
  integer[], uuid[], uuid[], bigint[], text[], integer[], jsonb[], jsonb[],
  text[], text[], bytea[], uuid[])
  SECURITY DEFINER SET search_path = public, pg_temp;
REVOKE EXECUTE ON FUNCTION append_commands(
  integer[], uuid[], uuid[], bigint[], text[], integer[], jsonb[], jsonb[],
  text[], text[], bytea[], uuid[]) FROM PUBLIC;
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bank_command') THEN
    REVOKE INSERT ON events, commands FROM bank_command;
    REVOKE USAGE ON SEQUENCE events_position_seq FROM bank_command;
    GRANT EXECUTE ON FUNCTION append_commands(
      integer[], uuid[], uuid[], bigint[], text[], integer[], jsonb[], jsonb[],
      text[], text[], bytea[], uuid[]) TO bank_command;
  END IF;
END
$$;

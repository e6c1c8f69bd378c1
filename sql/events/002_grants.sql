-- Privileges of the least-privilege roles (sql/roles.sql), when they exist.
-- The command service appends and reads; it never changes or removes events
-- (the triggers of 001 refuse that even to the owner).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bank_command') THEN
    GRANT SELECT, INSERT ON events, commands TO bank_command;
    GRANT SELECT, INSERT, UPDATE ON snapshots TO bank_command;
    GRANT USAGE ON SEQUENCE events_position_seq TO bank_command;
    GRANT SELECT ON schema_migrations TO bank_command;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bank_projector') THEN
    GRANT SELECT ON events TO bank_projector;
  END IF;
END
$$;

-- Privileges of the least-privilege roles (sql/roles.sql), when they exist.
-- The projector (which runs this) owns the read model; the query service
-- only reads it, including the tables a rebuild creates later.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bank_query') THEN
    GRANT SELECT ON account_balances, account_history, projection_checkpoints,
                    poison_events TO bank_query;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO bank_query;
  END IF;
END
$$;

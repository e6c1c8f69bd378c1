-- Least-privilege roles, created once per PostgreSQL cluster by an
-- administrator (a superuser), before the services first start:
--   psql -v ON_ERROR_STOP=1 -f sql/roles.sql
-- then the databases, owned by the roles that migrate them:
--   CREATE DATABASE bank_events OWNER bank_owner;
--   CREATE DATABASE bank_read OWNER bank_projector;
-- Set passwords with ALTER ROLE ... PASSWORD when not using trust or peer
-- authentication. Who may do what:
--   bank_owner      owns the events schema; used only to apply its migrations
--                   (command-service --events-migrate-db).
--   bank_command    command-service: SELECT on the event store; appends only
--                   through append_commands, which runs as the owner
--                   (sql/events/007); INSERT and UPDATE on snapshots only;
--                   never UPDATE or DELETE events.
--   bank_projector  projector: SELECT on events; owns the read model, which it
--                   migrates, writes and rebuilds.
--   bank_query      query-service: SELECT on the read model; writes the
--                   consumer groups' tables (sql/read/005) and nothing else.
-- The grants on tables live in the migrations (sql/events/002_grants.sql,
-- sql/read/002_grants.sql) and apply when these roles exist.
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['bank_owner', 'bank_command', 'bank_projector',
                           'bank_query']
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', r);
    END IF;
  END LOOP;
END
$$;

-- Bound what a stuck client can hold (see docs/architecture.md).
ALTER ROLE bank_command SET idle_in_transaction_session_timeout = '30s';
ALTER ROLE bank_projector SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE bank_query SET idle_in_transaction_session_timeout = '30s';
ALTER ROLE bank_query SET statement_timeout = '30s';

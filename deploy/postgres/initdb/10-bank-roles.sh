#!/bin/bash
# Runs once, when a database server of the compose stack first initializes
# its data directory (official postgres image or deploy/postgres alike):
# creates the least-privilege roles of sql/roles.sql, gives them the
# passwords from the environment, and creates BANK_DATABASE owned by
# BANK_DATABASE_OWNER. The services then migrate their own schemas.
set -euo pipefail
psql_admin=(psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres)
"${psql_admin[@]}" -f /bank/roles.sql
for pair in bank_owner:BANK_OWNER_DB_PASSWORD bank_command:BANK_COMMAND_DB_PASSWORD \
            bank_projector:BANK_PROJECTOR_DB_PASSWORD bank_query:BANK_QUERY_DB_PASSWORD; do
  role="${pair%%:*}"
  var="${pair##*:}"
  password="${!var:-}"
  if [ -z "$password" ]; then
    # No password: this role cannot log in over TCP on this server.
    continue
  fi
  "${psql_admin[@]}" -v role="$role" -v password="$password" <<'SQL'
ALTER ROLE :"role" PASSWORD :'password';
SQL
done
"${psql_admin[@]}" -v db="$BANK_DATABASE" -v owner="$BANK_DATABASE_OWNER" <<'SQL'
CREATE DATABASE :"db" OWNER :"owner";
SQL

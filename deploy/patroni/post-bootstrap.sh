#!/bin/bash
# Patroni's post_bootstrap, on the first primary only: the least-privilege
# roles with their passwords, and both databases with their owners, by the
# same script the single-server stack runs (deploy/postgres/initdb).
set -euo pipefail
export POSTGRES_USER=postgres
BANK_DATABASE=bank_events BANK_DATABASE_OWNER=bank_owner /bank/10-bank-roles.sh
BANK_DATABASE=bank_read BANK_DATABASE_OWNER=bank_projector /bank/10-bank-roles.sh

#!/usr/bin/env bash
# The whole test suite: lint (ruff, mypy, sqlfluff) then pytest against a real PostgreSQL.
# Called by `./bootstrap.sh test` (the README's test command) and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DO_NOT_TRACK=1 DBT_SEND_ANONYMOUS_USAGE_STATS=false
venv=.venv/bin

echo "== ruff"
"$venv/ruff" check loaders warehouse tests bench scripts

echo "== mypy"
"$venv/mypy"

echo "== sqlfluff"
"$venv/sqlfluff" lint models analyses snapshots --processes 2

run_pytest() {
  local status=0
  "$venv/pytest" -q -p no:cacheprovider "$@" || status=$?
  if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    return 1
  fi
  return "$status"
}

echo "== pytest (PostgreSQL 18, the embedded server)"
# the embedded server is started by the tests when PGHOST is unset
status=0
run_pytest "$@" || status=$?

# the tests marked every_server (loader rules and formats, a whole build compared with 18
# relation by relation, exports, roles) again on a throwaway PostgreSQL 15 cluster
pg15="${WAREHOUSE_TEST_PG15_BIN:-/usr/lib/postgresql/15/bin}"
if [ $# -eq 0 ]; then
  if [ -x "$pg15/postgres" ]; then
    echo "== pytest -m every_server (PostgreSQL 15: $pg15)"
    WAREHOUSE_TEST_SERVER_BIN="$pg15" run_pytest -m every_server || status=$?
  elif [ "${WAREHOUSE_TEST_REQUIRE_PG15:-0}" = 1 ]; then
    echo "PostgreSQL 15 is not installed at $pg15 (apt-get install postgresql-15)" >&2
    status=1
  else
    echo "== PostgreSQL 15 not installed ($pg15): the every_server tests ran on 18 only" \
      "(apt-get install postgresql-15 to run them on 15 too)"
  fi
fi
exit "$status"

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

echo "== pytest"
# the embedded server is started by the tests when PGHOST is unset
status=0
"$venv/pytest" -q -p no:cacheprovider "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"

#!/usr/bin/env bash
# dlt is a benchmark-only comparison: it lives in its own virtualenv, never in the project's.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv-dlt
.venv-dlt/bin/pip install --quiet "dlt[postgres]==1.31.0" "pyarrow>=26,<27"
echo "dlt installed in bench/.venv-dlt"

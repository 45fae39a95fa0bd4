#!/usr/bin/env bash
# The README's two commands:
#   ./bootstrap.sh demo   set up .venv, start the embedded database, load demo data, build, export
#   ./bootstrap.sh test   set up .venv and run the whole test suite (lint included)
# Re-running is fast: the virtualenv is reinstalled only when requirements.lock or
# pyproject.toml change.
set -euo pipefail
cd "$(dirname "$0")"
export DO_NOT_TRACK=1 DBT_SEND_ANONYMOUS_USAGE_STATS=false PIP_DISABLE_PIP_VERSION_CHECK=1

python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
  "$python_bin" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade "pip>=24"
  .venv/bin/python -m pip install --quiet -r requirements.lock
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi

case "${1:-}" in
  demo)
    shift
    exec .venv/bin/warehouse demo "$@"
    ;;
  test)
    shift
    exec bash scripts/test.sh "$@"
    ;;
  setup)
    echo "environment ready: .venv/bin/warehouse"
    ;;
  *)
    echo "usage: ./bootstrap.sh demo|test|setup" >&2
    exit 2
    ;;
esac

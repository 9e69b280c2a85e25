#!/usr/bin/env sh
# Installs cmdbgraph, creates a demo database and serves it at http://127.0.0.1:8000/graphql.
# Needs Python 3.11+. Extra arguments go to `cmdbgraph serve` (e.g. --port 9000).
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# A regular install, as the README's Install and the Dockerfile do (the package's own copy).
.venv/bin/python -m pip install -q --disable-pip-version-check .
.venv/bin/cmdbgraph db upgrade
.venv/bin/cmdbgraph seed --demo
exec .venv/bin/cmdbgraph serve "$@"

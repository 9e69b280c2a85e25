#!/usr/bin/env sh
# Installs everything the tests need, then runs the whole suite (extra arguments go to pytest).
# Needs Python 3.11+; installs PostgreSQL's server, PgBouncer (for tests/test_pgbouncer.py),
# Chromium (for tests/test_browser.py) and Node.js with npm (for the front-end examples,
# tests/test_examples.py) with apt-get where they are missing.
set -eu
cd "$(dirname "$0")/.."

have_postgres() {
    command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1
}

have_pgbouncer() {
    command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]
}

have_chromium() {
    command -v chromium >/dev/null 2>&1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
        echo "need root to install system packages: $*" >&2; return 1; fi
}

missing=""
have_postgres || missing="postgresql"
have_pgbouncer || missing="${missing:+$missing }pgbouncer"
# Debian's browser: Playwright drives it and never downloads one of its own.
have_chromium || missing="${missing:+$missing }chromium"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    missing="${missing:+$missing }nodejs npm"
if [ -n "$missing" ]; then
    echo "installing $missing (apt-get)" >&2
    as_root apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq $missing >/dev/null
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# Editable, so the tests run the working tree; setuptools' editable-install banner is noise.
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
# Types first: a type error fails the run before any test (config in pyproject.toml).
.venv/bin/python -m mypy
# Tests that need PostgreSQL or Chromium fail rather than skip when CI is set: this command
# installed both, so a skip here would hide a broken suite.
export CI="${CI:-true}"
exec .venv/bin/python -m pytest "$@"

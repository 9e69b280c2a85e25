#!/bin/sh
# With options only (the default CMD): apply pending migrations (idempotent, and safe when
# several replicas start at once), then serve. With a command (e.g. `seed --demo`, `apps create
# myapp`): run that cmdbgraph command instead.
set -eu
case "${1:-}" in
    ""|-*)
        cmdbgraph db upgrade
        exec cmdbgraph serve "$@"
        ;;
    *)
        exec cmdbgraph "$@"
        ;;
esac

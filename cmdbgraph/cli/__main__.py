"""``python -m cmdbgraph.cli``: the ``cmdbgraph`` command."""

from cmdbgraph.cli import main

main()

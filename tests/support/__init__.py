"""The shared test toolkit: what more than one test file (or the benchmark) needs.

Tests import the toolkit, never each other.

- ``calls``: requests in each interface: the paths, the demo credentials and headers, the
  batch mutation, GraphQL and REST bodies of a batch.
- ``databases``: the one fresh-database factory (copies of a migrated demo template, SQLite
  or PostgreSQL, the PostgreSQL ones dropped after their test), ``row_counts``,
  ``new_instances``, ``writes_nothing``, SQL statement counting, ``run_in_thread``.
- ``servers``: the one runner of real ``cmdbgraph serve`` processes (``live_server``,
  ``serve_to_exit``).
- ``ports``: the one free-port helper.
- ``pgserver``: a throwaway PostgreSQL cluster.
- ``upstream``: upstream's codes and their Chinese and English texts, written out once.
- ``reference``: upstream's per-item batch algorithm, the model the service is checked against.
- ``skip_report``: the pytest hook that says loudly when tests were skipped.
"""

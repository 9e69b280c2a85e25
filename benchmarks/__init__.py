"""Cost of one ``batch_create_instance_association`` batch, from the raw SQLite limit to GraphQL.

One run prepares one SQLite database (migrated, a 1:1 model association, enough instances),
then measures 200-item batches of fresh pairs (every item succeeds) for:

1. ``raw``: on SQLite plain stdlib ``sqlite3``, the same checks with ``IN`` queries and one
   executemany INSERT each for the associations, their audit rows and their events, in one
   ``BEGIN IMMEDIATE`` transaction; on PostgreSQL plain asyncpg running the service's own
   statements: the limit each backend's rows are compared with;
2. ``service``: ``cmdbgraph.services.associations.batch_create`` in-process;
3. ``rest``: the BlueKing REST shim over HTTP, a real ``cmdbgraph serve`` process;
4. ``graphql``: the ``batchCreateInstAssociations`` mutation over HTTP, same server, with the
   full per-item selection of ``tests/support/calls.BATCH_MUTATION`` (``graphql-min``: only the
   counts and upstream's two maps, to show what the 200 result objects cost);
5. ``per-item``: upstream's algorithm, one item at a time (duplicate, source, target, two 1:1
   checks, INSERT, audit INSERT: 7 statements per item) on the same async SQLAlchemy stack
   (``Database.write()``), in one transaction per batch.

Each method runs on its own copy of the prepared database; the methods run interleaved,
batch by batch, so that a busy stretch of the machine hits them alike. The table gives the
median and p90 wall time per batch, associations/s, the CPU time per batch, the ratios to
the raw limit, and every goal of the performance work with the value measured (``--stored``
adds the service on copies holding more associations: a batch should cost the same). Run
from the repository root:

    .venv/bin/python -m benchmarks [--rounds 30] [--warmup 5] [--batch-size 200]
        [--json] [--postgresql] [--auth] [--keep] [--methods a,b] [--stored N [N ...]]

See benchmarks/README.md for how to read the table. The modules: ``preparation`` (the database
every method starts from, its copies, the batches, the final check), ``methods`` (what is
measured), ``runner`` (the interleaved measurement and the command line), ``report`` (the
table).
"""

"""The GraphQL schema's pieces: types, inputs, payloads, scalars, the per-request context, the
limits and extensions. Imports ``services``, ``db`` and ``settings``; never ``resolvers`` (the
schema is put together above both, in ``cmdbgraph.api``)."""

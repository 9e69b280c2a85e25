"""The HTTP edge.

Low modules, used by the GraphQL view and the REST shim alike (they import ``services``,
``db`` and ``settings`` only): ``identity`` (who calls, trusted proxies, language, request id),
``jsonbody`` (the one JSON decoder), ``replies`` (every reply body, the status of each code).

High modules, wired by ``app``: ``graphql_view`` (GraphQL over HTTP; imports ``schema``),
``middleware`` (request ids, limits, logs, metrics), ``graphiql`` and ``api_docs`` (the pages),
``assets`` (the pages' vendored files: hashed names, precompressed), ``operations`` (health,
readiness, metrics, unknown paths)."""

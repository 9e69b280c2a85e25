"""cmdbgraph: a GraphQL service for CMDB instance associations, BlueKing-compatible.

Imports run one way, from the edge down to the database:

    app, cli                       wiring (app: the ASGI app; cli: the command line)
    http/  (views, middleware)     the HTTP edge: GraphQL view, pages, middleware, operations
    api                            build_schema(): resolvers + extensions
    resolvers/  rest/              GraphQL resolvers; the REST shim's declared calls
    schema/                        GraphQL types, inputs, payloads, context, limits
    http/  (identity, replies...)  who calls, body decoding, reply bodies and statuses
    services/                      the domain operations
    db/                            engines, tables, migrations
    settings                       configuration

Nothing imports a layer above its own.
"""

__version__ = "0.1.0"

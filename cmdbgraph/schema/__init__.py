"""The GraphQL schema: types, inputs, payloads, and ``build_schema``."""

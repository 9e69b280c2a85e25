"""cmdbgraph: a GraphQL service for CMDB instance associations, BlueKing-compatible."""

__version__ = "0.1.0"

"""The domain operations: associations, instances, models, authentication and permission,
audit, import and export, limits. No GraphQL or HTTP here: the API layers translate and call
these. Imports ``db``, ``settings`` and ``metrics`` only."""

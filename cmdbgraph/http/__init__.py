"""The HTTP edge: who calls (identity, trusted proxies), how request bodies are decoded, and
every reply body and status the service sends. It may import ``services`` and ``db``
(for the records and errors it renders), never ``schema``, ``resolvers`` or ``rest``."""

"""The BlueKing-compatible REST shim: each call declared once (``declarations``), answered
like upstream (routes, envelopes, codes, messages) and described by the generated OpenAPI
document. Imports ``services``, ``db`` and the HTTP edge's ``identity``, ``jsonbody`` and
``replies``."""

"""Storage: the engines and transactions (``engine``), the tables (``tables``), the set-based
statements of the hot path (``bulk``) and the Alembic migrations (``migrate``, ``migrations/``).
Imports only ``settings``."""

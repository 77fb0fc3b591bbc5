"""Security regression tests use the API's client (Shanxi 2021 on SQLite and PostgreSQL)."""
from ..api.conftest import client, plain_tracebacks  # noqa: F401  (fixtures, re-exported)

"""The fault suite reuses the API tests' client (the Shanxi 2021 round, tokens by role)."""
from ..api.conftest import client  # noqa: F401

"""Settings, read from environment variables prefixed ``WORKFLOW_``."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKFLOW_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{Path('var') / 'workflow.db'}",
        description="SQLAlchemy URL; a SQLite file under ./var/ by default, postgresql+psycopg://... for PostgreSQL",
    )
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    rubrics_dir: Path = REPO_ROOT / "rubrics"
    calendars_dir: Path = REPO_ROOT / "calendars"
    log_level: str = "INFO"

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
    evidence_dir: Path = Field(default=Path("var") / "evidence", description="where evidence files are kept")
    evidence_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1, description="largest evidence file accepted")
    evidence_types: str = Field(
        default="pdf,png,jpeg,gif,webp,tiff,docx,xlsx,pptx,doc,xls,ppt,ofd,zip,txt",
        description="evidence types accepted, judged by content (comma-separated names)")
    smtp_host: str | None = Field(default=None, description="SMTP server; without one, mails go to the maildir")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool | None = Field(default=None, description="None: use STARTTLS when offered; false: never")
    smtp_tls: bool = Field(default=False, description="implicit TLS (port 465)")
    smtp_timeout: float = Field(default=30.0, gt=0)
    maildir: Path = Field(default=Path("var") / "mail", description="where mails go without an SMTP server")
    mail_from: str = "noreply@workflow.local"
    mail_from_name: str = "节约型机关创建工作"
    message_domain: str = "workflow.local"
    dispatch_max_attempts: int = Field(default=20, ge=1)
    dispatch_lease_seconds: int = Field(default=600, ge=1, description="how long a claimed mail is reserved for the "
                                                                        "dispatcher that claimed it")
    sweep_interval_minutes: int = Field(default=60, ge=1)
    dispatch_interval_seconds: int = Field(default=30, ge=1)
    log_level: str = "INFO"

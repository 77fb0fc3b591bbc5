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
    db_pool_size: int = Field(default=20, ge=1, le=500,
                              description="PostgreSQL: connections each process keeps open (a connection per "
                                          "request thread at peak, none opened and closed under load)")
    db_max_overflow: int = Field(default=10, ge=0, le=500,
                                 description="PostgreSQL: connections opened beyond the pool at a peak, closed after")
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

    # --- the console's sign-in (docs/security.md)
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30, description="how long a console session lasts")
    signin_max_failures: int = Field(default=5, ge=1, le=100,
                                     description="failed sign-ins within the window that lock a login")
    signin_failure_window_minutes: float = Field(default=15.0, gt=0, description="the window failures count in")
    signin_lock_minutes: float = Field(default=15.0, gt=0, description="how long a locked login stays locked")
    invitation_days: float = Field(default=7.0, gt=0, le=90, description="how long an invitation link works")
    reset_hours: float = Field(default=24.0, gt=0, le=24 * 14, description="how long a password-reset link works")
    console_url: str | None = Field(default=None, description="the console's address as people reach it, for the "
                                                              "links in mails (default: the address of the request)")
    cookie_secure: bool | None = Field(default=None, description="Secure cookies: None = when the request came over "
                                                                 "TLS (https, or a proxy saying so)")

    # --- bounds on what a request may make the server read or hold (docs/security.md)
    request_max_bytes: int = Field(default=1024 * 1024, ge=1024,
                                   description="largest request body other than a file upload")
    roster_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="largest roster file accepted")
    sheet_max_rows: int = Field(default=200_000, ge=1, description="most rows a spreadsheet read may have")
    sheet_max_columns: int = Field(default=64, ge=1, description="most columns a spreadsheet read may have")
    sheet_max_cells: int = Field(default=4_000_000, ge=1, description="most cells (rows x columns) of a spreadsheet")
    sheet_max_merged: int = Field(default=10_000, ge=0, description="most merged ranges a spreadsheet may have")
    sheet_max_uncompressed_bytes: int = Field(default=256 * 1024 * 1024, ge=1024,
                                              description="largest total uncompressed size of an .xlsx's parts")
    upload_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024,
                                  description="largest upload request of several files (multipart/form-data)")
    upload_max_files: int = Field(default=20, ge=1, description="most files in one upload request")
    evidence_quota_bytes: int = Field(default=1024 * 1024 * 1024, ge=1,
                                      description="most bytes of evidence and documents one case may hold")
    evidence_quota_files: int = Field(default=2000, ge=1, description="most evidence and document files per case")

    # --- the audit chain's checkpoints, signed with a key kept outside the database
    checkpoint_dir: Path = Field(default=Path("var") / "checkpoints",
                                 description="where signed checkpoints are written (outside the database)")
    checkpoint_key: Path = Field(default=Path("var") / "keys" / "checkpoint-ed25519.pem",
                                 description="the Ed25519 private key that signs checkpoints (PEM)")
    checkpoint_interval_minutes: int = Field(default=60, ge=1, description="how often serve writes a checkpoint")
    channels_any_host: bool = Field(default=False, description="let a WeCom/DingTalk channel call a host other than "
                                    "the platform's own, or a channel plain http (a bureau's proxy)")

    # --- mail, metrics and connections
    smtp_allow_plaintext_login: bool = Field(default=False, description="send SMTP credentials without TLS "
                                                                       "(only for a server on a trusted host)")
    smtp_ca_file: Path | None = Field(default=None, description="CA certificates to trust for the SMTP server's "
                                                                "TLS, besides the system's")
    metrics_token: str | None = Field(default=None, description="when set, /metrics needs "
                                                                "'Authorization: Bearer <this>'")
    metrics_enabled: bool = Field(default=True, description="false: /metrics answers 404")
    header_timeout_seconds: float = Field(default=10.0, gt=0, description="time a client has to send its headers")
    body_timeout_seconds: float = Field(default=30.0, gt=0, description="longest pause while a body streams in")
    keep_alive_seconds: float = Field(default=5.0, gt=0, description="idle keep-alive connections are closed after")

"""The one place that wires real (or test) dependencies together."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from .adapters.calendar_files import CalendarCatalog
from .adapters.db.engine import make_engine
from .adapters.db.migrate import current_revision, head_revision, is_empty, upgrade
from .adapters.db.store import Database
from .clock import Clock, SystemClock
from .config import Settings
from .domain.errors import ConfigError, DomainError


class NotMigrated(DomainError):
    code = "not_migrated"


@dataclass
class App:
    settings: Settings
    engine: Engine
    db: Database
    clock: Clock
    calendars: CalendarCatalog
    _rubrics: Any = field(default=None, repr=False)

    @property
    def rubrics(self) -> Any:
        if self._rubrics is None:
            from .adapters.rubric_files import RubricCatalog

            self._rubrics = RubricCatalog(self.settings.rubrics_dir)
        return self._rubrics

    @property
    def evidence(self) -> Any:
        from .adapters.evidence_store import ALLOWED_TYPES, LocalEvidenceStore

        allowed = frozenset(t.strip() for t in self.settings.evidence_types.split(",") if t.strip())
        unknown = sorted(allowed - ALLOWED_TYPES.keys())
        if unknown:
            raise ConfigError(f"WORKFLOW_EVIDENCE_TYPES names unknown types {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(ALLOWED_TYPES))}")
        return LocalEvidenceStore(self.settings.evidence_dir, max_bytes=self.settings.evidence_max_bytes,
                                  allowed=allowed)

    def transport(self) -> Any:
        """SMTP when a server is configured, else a local maildir a newcomer can open."""
        from notifications import MaildirTransport, SmtpTransport

        st = self.settings
        if st.smtp_host:
            return SmtpTransport(st.smtp_host, st.smtp_port, username=st.smtp_username, password=st.smtp_password,
                                 starttls=st.smtp_starttls, use_tls=st.smtp_tls, timeout=st.smtp_timeout,
                                 allow_plaintext_login=st.smtp_allow_plaintext_login,
                                 cert_bundle=str(st.smtp_ca_file) if st.smtp_ca_file else None)
        return MaildirTransport(st.maildir)

    def sign_in_policy(self) -> Any:
        from .service.sign_in import SignInPolicy

        st = self.settings
        return SignInPolicy(session_hours=st.session_hours, max_failures=st.signin_max_failures,
                            failure_window_minutes=st.signin_failure_window_minutes,
                            lock_minutes=st.signin_lock_minutes, invitation_days=st.invitation_days,
                            reset_hours=st.reset_hours)

    def dispatch_settings(self) -> Any:
        from notifications import Address

        from .service.dispatch import DispatchSettings

        st = self.settings
        from .service.checkpoints import anchor

        return DispatchSettings(sender=Address(st.mail_from, st.mail_from_name), message_domain=st.message_domain,
                                max_attempts=st.dispatch_max_attempts,
                                lease=timedelta(seconds=st.dispatch_lease_seconds),
                                anchor=lambda: anchor(self.checkpoint_store()))

    def checkpoint_store(self) -> Any:
        """The signed checkpoints of the audit chain (a directory outside the database)."""
        from .adapters.checkpoint_files import CheckpointDirectory

        return CheckpointDirectory(self.settings.checkpoint_dir)

    def checkpoint_signer(self) -> Any:
        """The key that signs checkpoints (ConfigError, saying what to do, when there is none)."""
        from .adapters.checkpoint_files import Ed25519Signer

        return Ed25519Signer.from_file(self.settings.checkpoint_key)

    def checkpoint_verifier(self, public_key: Path | None = None) -> Any:
        """What checks checkpoint signatures: the public key given, else the public half of the
        private key, else the public key kept beside it; None when there is none of them."""
        from .adapters.checkpoint_files import Ed25519Verifier, public_key_path

        if public_key is not None:
            return Ed25519Verifier.from_file(public_key)
        key = self.settings.checkpoint_key
        for path in (key, public_key_path(key)):
            if path.is_file():
                return Ed25519Verifier.from_file(path)
        return None

    def audit_checkpoints(self) -> Any:
        """Where a background chain check reads the latest signed checkpoint, and the key that
        checks it (``service.audit_runs.Checkpoints``; an unusable key file is logged and said)."""
        from .domain.errors import DomainError
        from .service.audit_runs import Checkpoints, log

        try:
            return Checkpoints(self.checkpoint_store(), self.checkpoint_verifier())
        except DomainError as exc:  # the operator's to fix (logged), not the check's end
            log.error("checkpoint key unusable", error=exc.message)
            return Checkpoints(self.checkpoint_store(), None, exc.message_zh or exc.message)

    def run_audit_checks(self) -> list[int]:
        """Run the chain checks waiting (``service.audit_runs.run_queued``); their ids."""
        from .service.audit_runs import run_queued

        return run_queued(self.db, self.clock.now, self.audit_checkpoints)

    def nightly_audit(self) -> list[int]:
        """The scheduler's nightly check of every jurisdiction's chains (and any check waiting)."""
        from .service.audit_runs import EVERYTHING, SCHEDULER, request_check

        request_check(self.db, EVERYTHING, SCHEDULER, self.clock.now())
        return self.run_audit_checks()

    def checkpoint_job(self) -> Any:
        """The scheduler's checkpoint job: a checkpoint when a chain moved since the last one, and
        once a day the latest one's anchor mailed to the provinces' coordinators."""
        from .adapters.scheduler import CheckpointJob
        from .service.checkpoints import queue_anchor_mails, write_checkpoint

        return CheckpointJob(lambda: write_checkpoint(self.db, self.checkpoint_store(), self.checkpoint_signer(),
                                                      self.clock.now(), skip_unchanged=True),
                             self.settings.checkpoint_key,
                             after=lambda done: queue_anchor_mails(self.db, done, self.clock.now()))

    def scheduler_holder(self) -> str | None:
        """Which process holds the scheduler's lock (None: none); raises when the database
        does not answer."""
        from sqlalchemy import text

        from .adapters.scheduler import LeaderLock

        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return LeaderLock(self.engine, "readyz").holder()

    def require_schema(self, *, create_new_sqlite: bool = False) -> None:
        """Refuse a database whose schema is not the code's (``NotMigrated``, saying to run
        ``workflow db upgrade``). With ``create_new_sqlite`` a new SQLite database (no table at
        all: the embedded default on its first start) gets the schema here; an SQLite database
        at an older revision and any PostgreSQL database are migrated only on purpose."""
        if create_new_sqlite and self.engine.dialect.name == "sqlite" and is_empty(self.engine):
            upgrade(self.engine)
        current, head = current_revision(self.engine), head_revision(self.engine)
        if current != head:
            where = self.engine.url.render_as_string(hide_password=True)
            if current is None and is_empty(self.engine):
                raise NotMigrated(f"the database at {where} has no schema yet (schema none; the code needs {head}): "
                                  "run `workflow db upgrade` to create it, then start again")
            raise NotMigrated(
                f"the database at {where} is at schema {current or 'none'}, the code needs {head}: "
                "run `workflow db upgrade`")

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings | None = None, clock: Clock | None = None) -> App:
    settings = settings or Settings()
    engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms,
                         pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    return App(settings=settings, engine=engine, db=Database(engine), clock=clock or SystemClock(),
               calendars=CalendarCatalog(settings.calendars_dir))

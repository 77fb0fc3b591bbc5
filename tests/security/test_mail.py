"""Mail: the SMTP password only over TLS (a real aiosmtpd server, with and without STARTTLS),
and one address rule at input and in the mailer."""
from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from notifications import Address, SmtpTransport, to_bytes
from notifications.addresses import check_address
from workflow.domain.errors import ProblemList
from workflow.domain.units import check_contact

from ..notifications.helpers import NOW, PASSWORD, USERNAME, RecordingHandler, free_port, message


class _Logins:
    """An authenticator that records every login attempt it sees (and accepts the right one)."""

    def __init__(self) -> None:
        self.attempts: list[tuple[bytes, bool]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult

        self.attempts.append((auth_data.login, bool(session.ssl)))
        ok = (auth_data.login, auth_data.password) == (USERNAME.encode(), PASSWORD.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    from ipaddress import ip_address

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(datetime.now(UTC) - timedelta(days=1))
            .not_valid_after(datetime.now(UTC) + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture(params=["plain", "starttls"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Controller, RecordingHandler, _Logins,
                                                                                  str | None]]:
    handler, logins = RecordingHandler(), _Logins()
    context, bundle = None, None
    if request.param == "starttls":
        cert, key = _self_signed(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        bundle = str(cert)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), authenticator=logins,
                            auth_require_tls=False, tls_context=context)
    controller.start()
    try:
        yield controller, handler, logins, bundle
    finally:
        controller.stop()


def _send(transport: SmtpTransport, n: int = 2):  # type: ignore[no-untyped-def]
    return asyncio.run(transport.send_many([(message(i), NOW) for i in range(n)]))


def test_the_password_goes_only_over_tls(server) -> None:
    controller, handler, logins, bundle = server
    transport = SmtpTransport(controller.hostname, controller.port, username=USERNAME, password=PASSWORD,
                              timeout=10, sender_hostname="tests.local", cert_bundle=bundle)
    results = _send(transport)
    if bundle is None:  # no STARTTLS offered: nothing is sent, the password never leaves
        assert logins.attempts == [] and handler.received == []
        assert all(not r.ok and not r.permanent and "TLS" in r.detail for r in results)
    else:  # STARTTLS offered: the login happens, encrypted
        assert all(r.ok for r in results)
        assert logins.attempts == [(USERNAME.encode(), True)]
        assert [r.login for r in handler.received] == [USERNAME.encode()] * 2


@pytest.mark.parametrize("server", ["plain"], indirect=True)
def test_plaintext_login_only_when_a_setting_allows_it(server) -> None:
    controller, _handler, logins, _bundle = server
    allowed = SmtpTransport(controller.hostname, controller.port, username=USERNAME, password=PASSWORD,
                            timeout=10, sender_hostname="tests.local", allow_plaintext_login=True)
    assert all(r.ok for r in _send(allowed))
    assert logins.attempts == [(USERNAME.encode(), False)]
    with pytest.raises(ValueError, match="only sent over TLS"):
        SmtpTransport(controller.hostname, controller.port, username=USERNAME, password=PASSWORD, starttls=False)


def test_settings_reach_the_transport(tmp_path: Path) -> None:
    from workflow.bootstrap import build
    from workflow.config import Settings

    app = build(Settings(database_url=f"sqlite:///{tmp_path}/w.db", smtp_host="127.0.0.1", smtp_username="u",
                         smtp_password="p", smtp_ca_file=tmp_path / "ca.pem"))
    t = app.transport()
    assert t.allow_plaintext_login is False and t.cert_bundle == str(tmp_path / "ca.pem")
    with pytest.raises(ValueError, match="only sent over TLS"):
        build(Settings(database_url=f"sqlite:///{tmp_path}/w.db", smtp_host="127.0.0.1", smtp_username="u",
                       smtp_starttls=False)).transport()


# ---------------------------------------------------------------- one address rule

def _accepted_at_input(email: str) -> str | None:
    problems = ProblemList()
    contact = check_contact({"name": "王科长", "email": email}, "contact", problems, address=check_address)
    return None if problems or contact is None else contact.email


def _accepted_by_mailer(email: str) -> bool:
    try:
        Address(email, "王科长")
    except ValueError:
        return False
    return True


CASES = ["wang@example.cn", "王科长@财政.中国", "a.b+tag@sub.example.gov.cn", "noreply@bureau.local",
         "a b@example.cn", "a@@example.cn", "a@example", "\"quoted\"@example.cn", "a@[10.0.0.1]", "a..b@example.cn",
         "a@example.cn\r\nBcc: x@evil.cn", "<a@example.cn>", "a@-example.cn", "a" * 65 + "@example.cn",
         "a@" + "b" * 64 + ".cn", ".a@example.cn", "a@example.cn.", "a@exa mple.cn", "a@例子。中国"]


@pytest.mark.parametrize("email", CASES)
def test_input_and_mailer_agree(email: str) -> None:
    stored = _accepted_at_input(email)
    if stored is None:
        assert not _accepted_by_mailer(email) or email.strip() != email
    else:  # what input accepted (and stored) is always deliverable by the mailer
        assert _accepted_by_mailer(stored)
        to_bytes(message(1, to=(Address(stored),)), date=NOW)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.emails(), st.text(max_size=40), st.from_regex(r"[^@\s]{1,10}@[^@\s]{1,10}\.[a-z]{2,4}",
                                                                   fullmatch=True)))
def test_nothing_accepted_at_input_can_block_the_outbox(email: str) -> None:
    stored = _accepted_at_input(email)
    if stored is not None:
        assert _accepted_by_mailer(stored), stored
        assert check_address(stored) == stored  # the stored form is already the normal form

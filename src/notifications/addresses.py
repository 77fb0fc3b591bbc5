"""The one rule for an email address, at input and in the mailer: email-validator's syntax
(RFC 5321/5322 as mail servers accept it, internationalised addresses included), without a
DNS lookup (bureau intranets often have no public DNS).

Everything accepted when a contact or coordinator is entered passes again when a mail is
built, so nothing accepted at input can block the outbox later. ``.local`` domains are
accepted (intranet mail servers use them; email-validator reserves them by default, and
documents ``SPECIAL_USE_DOMAIN_NAMES`` as the list an application may adjust).
"""
from __future__ import annotations

import email_validator
from email_validator import EmailNotValidError, validate_email

__all__ = ["address_problem", "check_address"]

MAX_ADDRESS = 254  # RFC 5321's limit on a forward path
if "local" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
    email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("local")


def check_address(text: str) -> str:
    """The address in its normal form (domain lower-cased, Unicode NFC); ValueError with the
    reason when it is not one."""
    if not isinstance(text, str) or len(text) > MAX_ADDRESS:
        raise ValueError(f"an email address of at most {MAX_ADDRESS} characters")
    try:
        return str(validate_email(text, check_deliverability=False, allow_smtputf8=True).normalized)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def address_problem(text: str) -> str | None:
    """Why ``text`` is not an email address (English), or None if it is one."""
    try:
        check_address(text)
    except ValueError as exc:
        return str(exc)
    return None

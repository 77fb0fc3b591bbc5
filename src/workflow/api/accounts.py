"""Accounts for people and their tokens; the operator audit log."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..domain.access import Principal
from ..domain.errors import InvalidInput
from ..domain.operator import EVENT_NAMES, STREAMS
from ..service import accounts as people
from ..service.histories import operator_csv_lines, operator_jsonl
from ..service.ports import AccountRecord
from ..service.tokens import create_token, revoke_token
from .common import Application, Caller, role_in
from .schemas import Out

router = APIRouter(prefix="/api/v1")
Operator = Annotated[Principal, Depends(role_in("coordinator", "admin", doing="manage accounts"))]
Admin = Annotated[Principal, Depends(role_in("admin", doing="do this (admins only)"))]
AccountId = Annotated[int, Path(ge=1, le=2**31 - 1, description="an account id")]
TokenId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a token id")]


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"login": "wang.li", "name": "王丽", "role": "coordinator", "jurisdiction_id": "shanxi-taiyuan",
         "email": "wangli@example.gov.cn"}]})
    login: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=100)
    role: str = Field(max_length=16)
    unit_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    jurisdiction_id: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)
    password: str | None = Field(default=None, max_length=200, description="optional; argon2id-hashed, never shown")


class AccountChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_at: datetime | None = Field(default=None, description="ISO time with its zone; none: never expires")


class AccountOut(Out):
    id: int
    login: str
    name: str
    role: str
    unit_id: int | None
    jurisdiction_id: str | None
    email: str | None
    phone: str | None
    has_password: bool
    disabled: bool
    created_at: datetime
    created_by: str


class DisabledOut(AccountOut):
    tokens_revoked: int


class TokenOut(Out):
    id: int
    account_id: int
    secret: str = Field(description="shown once, never stored")


def account_out(a: AccountRecord) -> AccountOut:
    return AccountOut(id=a.id, login=a.login, name=a.name, role=a.role, unit_id=a.unit_id,
                      jurisdiction_id=a.jurisdiction_id, email=a.email, phone=a.phone,
                      has_password=a.password_hash is not None, disabled=a.disabled_at is not None,
                      created_at=a.created_at, created_by=a.created_by)


@router.get("/accounts", tags=["accounts"])
def list_accounts(who: Caller, application: Application) -> list[AccountOut]:
    """The accounts the caller may see: an admin all; a coordinator or auditor their subtree's;
    anyone else their own."""
    return [account_out(a) for a in people.list_accounts(application.db, who)]


@router.get("/accounts/me", tags=["accounts"])
def me(who: Caller, application: Application) -> AccountOut:
    """The caller's own account."""
    return account_out(people.get_account(application.db, who.account_id or 0, who))


@router.post("/accounts", tags=["accounts"], status_code=201)
def create(body: AccountIn, who: Operator, application: Application) -> AccountOut:
    """Make an account (a coordinator: for their subtree; never an admin's)."""
    return account_out(people.create_account(application.db, by=who, now=application.clock.now(),
                                             **body.model_dump()))


@router.get("/accounts/{account_id}", tags=["accounts"])
def get(account_id: AccountId, who: Caller, application: Application) -> AccountOut:
    return account_out(people.get_account(application.db, account_id, who))


@router.patch("/accounts/{account_id}", tags=["accounts"])
def change(account_id: AccountId, body: AccountChange, who: Operator, application: Application) -> AccountOut:
    """Change an account's display name or contact (role and scope never change)."""
    return account_out(people.change_account(application.db, account_id, body.model_dump(exclude_unset=True),
                                             by=who, now=application.clock.now()))


@router.post("/accounts/{account_id}/disable", tags=["accounts"])
def disable(account_id: AccountId, body: Reason, who: Operator, application: Application) -> DisabledOut:
    """Disable an account: it no longer authenticates, and its tokens are revoked at once."""
    a, revoked = people.set_enabled(application.db, account_id, False, by=who, now=application.clock.now(),
                                    reason=body.reason)
    return DisabledOut(**account_out(a).model_dump(), tokens_revoked=revoked)


@router.post("/accounts/{account_id}/enable", tags=["accounts"])
def enable(account_id: AccountId, who: Operator, application: Application) -> AccountOut:
    a, _ = people.set_enabled(application.db, account_id, True, by=who, now=application.clock.now())
    return account_out(a)


@router.post("/accounts/{account_id}/tokens", tags=["accounts"], status_code=201)
def issue_token(account_id: AccountId, body: TokenIn, who: Caller, application: Application) -> TokenOut:
    """A new token for the account (its own person, the coordinator above it or an admin); the
    secret is in this answer only."""
    made = create_token(application.db, account_id=account_id, by=who, now=application.clock.now(),
                        expires_at=body.expires_at)
    return TokenOut(id=made.id, account_id=account_id, secret=made.secret)


@router.delete("/tokens/{token_id}", tags=["accounts"], status_code=204)
def revoke(token_id: TokenId, who: Admin, application: Application) -> None:
    """Revoke a token at once (recorded with who revoked it)."""
    revoke_token(application.db, token_id, application.clock.now(), by=who.actor)


@router.get("/audit/operator-events", tags=["audit"], response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}})
def operator_events(who: Admin, application: Application,
                    stream: str | None = Query(None, max_length=32, description=", ".join(STREAMS)),
                    format: Literal["jsonl", "csv"] = Query("jsonl")) -> StreamingResponse:
    """The operator audit log (changes to accounts, tokens, jurisdictions, units, coordinators and
    rounds), as JSON lines or CSV (Beijing time, Chinese names). Admins only: the streams are
    the whole system's, not partitioned by jurisdiction."""
    if stream is not None and stream not in STREAMS:
        raise InvalidInput(f"unknown stream {stream!r} (one of {', '.join(STREAMS)})", [],
                           f"没有名为 {stream!r} 的操作日志（可选：{'、'.join(STREAMS)}）")
    events = application.db.operator.events(stream)
    if format == "csv":
        return StreamingResponse(operator_csv_lines(events), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="operator-events.csv"'})
    return StreamingResponse(operator_jsonl(events), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="operator-events.jsonl"'})


__all__ = ["EVENT_NAMES", "router"]

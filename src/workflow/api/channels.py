"""Group robots and webhooks that notifications also go to (decision 53): list, add, disable.

The service (``service/channels.py``) checks every field at once in both languages and scopes
each channel to the caller's subtree; an address is answered masked (it carries the robot's key)
and a secret never."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from notifications.robots import KIND_NAMES

from ..domain.access import Principal
from ..domain.errors import InvalidInput, Problem
from ..service.channels import AUDIENCES, add_channel, disable_channel, list_channels, masked
from ..service.ports import ChannelRecord
from .common import Application, role_in
from .schemas import Out

router = APIRouter(prefix="/api/v1")
Reader = Annotated[Principal, Depends(role_in("coordinator", "auditor", "admin", doing="read the channels"))]
Operator = Annotated[Principal, Depends(role_in("coordinator", "admin", doing="configure channels"))]
ChannelId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a channel id")]


class ChannelIn(BaseModel):
    """Lengths are bounded here; what the fields mean is checked by the service (every problem at once)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"jurisdiction": "shanxi-taiyuan", "kind": "wecom", "audience": "units", "name": "太原市创建单位群",
         "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"},
        {"jurisdiction": "shanxi", "kind": "dingtalk", "audience": "coordinators", "name": "省局协调群",
         "url": "https://oapi.dingtalk.com/robot/send?access_token=…", "secret": "SEC…"}]})
    jurisdiction: str | None = Field(default=None, max_length=64, description="default: the caller's")
    kind: str = Field(max_length=20, description="wecom | dingtalk | webhook")
    audience: str = Field(max_length=20, description="units (those without email) | coordinators | unit")
    name: str = Field(max_length=200)
    url: str = Field(max_length=2000)
    secret: str | None = Field(default=None, max_length=400, description="DingTalk's SEC… or the webhook's HMAC key")
    unit: int | None = Field(default=None, ge=1, le=2**31 - 1, description="for audience unit")


class ChannelOut(Out):
    id: int
    name: str
    kind: str
    kind_zh: str
    audience: str
    audience_zh: str
    jurisdiction: str
    unit: int | None
    url: str = Field(description="masked: the key or token is not shown")
    signed: bool
    enabled: bool
    created_at: str
    created_by: str
    disabled_at: str | None


def channel_out(c: ChannelRecord) -> ChannelOut:
    return ChannelOut(id=c.id, name=c.name, kind=c.kind, kind_zh=KIND_NAMES.get(c.kind, c.kind), audience=c.audience,
                      audience_zh=AUDIENCES.get(c.audience, c.audience), jurisdiction=c.jurisdiction_id,
                      unit=c.unit_id, url=masked(c.url), signed=c.secret is not None, enabled=c.disabled_at is None,
                      created_at=c.created_at.isoformat(), created_by=c.created_by,
                      disabled_at=None if c.disabled_at is None else c.disabled_at.isoformat())


@router.get("/channels", tags=["channels"])
def channels(who: Reader, application: Application) -> list[ChannelOut]:
    """The channels of the caller's subtree (an admin: all)."""
    return [channel_out(c) for c in list_channels(application.db, who)]


@router.post("/channels", tags=["channels"], status_code=201)
def add(body: ChannelIn, who: Operator, application: Application) -> ChannelOut:
    """Send notifications to a group robot or a bureau's webhook too: a jurisdiction's group for
    its units without email or for its coordinators, or one unit's own."""
    jurisdiction = body.jurisdiction or (who.jurisdiction_path.strip("/").split("/")[-1]
                                         if who.jurisdiction_path else None)
    if jurisdiction is None and body.unit is None:
        raise InvalidInput("a channel needs its jurisdiction (or its unit)",
                           [Problem("jurisdiction", "give the jurisdiction whose channel it is",
                                    "请填写渠道所属的地区")], "请填写渠道所属的地区（或单位）")
    return channel_out(add_channel(
        application.db, who, application.clock.now(), jurisdiction_id=jurisdiction, kind=body.kind,
        url=body.url, audience=body.audience, name=body.name, secret=body.secret, unit_id=body.unit,
        any_host=application.settings.channels_any_host))


@router.post("/channels/{channel_id}/disable", tags=["channels"])
def disable(channel_id: ChannelId, who: Operator, application: Application) -> ChannelOut:
    """Stop sending to the channel (what still waits for it is cancelled when it comes up)."""
    return channel_out(disable_channel(application.db, who, channel_id, application.clock.now()))

"""The operator audit log: changes to the directory and the system's people (jurisdictions,
units and their contacts, rosters, coordinators, accounts, tokens, rounds) as events on their
own hash-chained streams, one stream per kind of thing changed, beside the cases' histories.

An operator event is chained exactly as a case event is (``events.chain_hash``), naming its
stream ``operator/<stream>`` instead of a case id, so ``audit verify`` and the signed
checkpoints treat the three kinds of chain alike.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .events import Chained, canonical_json, chain_hash, to_payload_value, utc_iso

# stream → its name in Chinese
STREAMS: dict[str, str] = {
    "accounts": "账号", "tokens": "访问令牌", "jurisdictions": "辖区", "units": "单位与联系人",
    "coordinators": "联络员", "rounds": "创建轮次", "sign_ins": "控制台登录",
    "mail": "邮件重发", "channels": "推送渠道",
}
# event type → its name in Chinese
EVENT_NAMES: dict[str, str] = {
    "AccountCreated": "创建账号", "AccountChanged": "修改账号", "AccountDisabled": "停用账号",
    "AccountEnabled": "启用账号", "PasswordSet": "设置密码",
    "TokenIssued": "发放令牌", "TokenRevoked": "撤销令牌",
    "JurisdictionCreated": "新增辖区", "JurisdictionsImported": "导入辖区",
    "UnitCreated": "新增单位", "UnitChanged": "修改单位", "UnitsImported": "导入单位名册",
    "CoordinatorAdded": "新增联络员",
    "RoundOpened": "开启轮次", "RoundRolledOver": "结转轮次", "UnitRegistered": "补登记单位",
    "SignedIn": "登录", "SignInFailed": "登录失败", "SignInLocked": "登录锁定", "SignedOut": "退出登录",
    "LinkIssued": "发出邀请或重置链接", "LinkUsed": "通过链接设置密码",
    "MailResent": "重新发送失败的邮件",
    "ChannelAdded": "添加推送渠道", "ChannelDisabled": "停用推送渠道",
}


def stream_key(stream: str) -> str:
    """What an operator event's hash names instead of a case id."""
    return f"operator/{stream}"


@dataclass(frozen=True, slots=True)
class OperatorEvent(Chained):
    stream_name: str
    seq: int
    type: str
    actor: str
    occurred_at: datetime
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str
    position: int | None = None
    payload_text: str | None = None

    def stream(self) -> str:
        return stream_key(self.stream_name)

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "stream": self.stream_name, "seq": self.seq, "type": self.type,
                "actor": self.actor, "occurred_at": utc_iso(self.occurred_at), "payload": dict(self.payload),
                "prev_hash": self.prev_hash, "hash": self.hash}


def new_operator_event(stream: str, seq: int, type_: str, actor: str, occurred_at: datetime,
                       payload: Mapping[str, Any], prev_hash: str) -> OperatorEvent:
    if stream not in STREAMS:
        raise ValueError(f"unknown operator stream {stream!r}")
    if type_ not in EVENT_NAMES:
        raise ValueError(f"unknown operator event {type_!r}")
    clean = {k: to_payload_value(v) for k, v in payload.items()}
    body = canonical_json(clean)
    at = utc_iso(occurred_at)
    return OperatorEvent(stream, seq, type_, actor, occurred_at.astimezone(UTC), clean, prev_hash,
                         chain_hash(stream_key(stream), seq, type_, actor, at, body, prev_hash), payload_text=body)

"""Robot channels: WeCom and DingTalk group robots and bureaus' own webhooks that notifications
also go to, beside the mail (``notifications/robots.py`` delivers them).

Who gets what (decision 53):

- a unit's own channel (audience ``unit``) gets every notice of the unit's cases (reminders,
  misses, the 整改通知 and its reminders);
- a jurisdiction's group for its units (audience ``units``) gets a unit's notices only when the
  unit has no contact email (附件2 not on file): the group is where it is reached; the nearest
  such group up the unit's path;
- a jurisdiction's group for its coordinators (audience ``coordinators``) gets the coordinators'
  reminders and digests of that jurisdiction, once per reason (not once per coordinator).

Each is a row of the outbox with the channel's id, written by the dispatcher beside the mail's
row it was claimed with (``deliveries_for``), so it is delivered once per reason and channel with
the mail's leases, retries and failure records. The URL carries the robot's key and the secret
signs: both are kept in the database and never shown whole (``masked``).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from notifications.robots import KIND_NAMES, KINDS, OFFICIAL_HOSTS, Robot
from notifications.robots import masked as masked  # the channels' addresses as shown

from ..domain.access import Principal
from ..domain.dates import require_aware
from ..domain.errors import Forbidden, NotFound, ProblemList
from .ports import ChannelRecord, OutboxEntry, OutboxRecord, Storage

AUDIENCES = {"units": "本地区各创建单位（无邮箱的单位）", "coordinators": "本地区协调人员", "unit": "单个创建单位"}
URL_MAX, SECRET_MAX, NAME_MAX = 1000, 200, 100
UNIT_KINDS = ("reminder", "missed", "rectification", "rectification_missed", "rectification_notice",
              "revocation_notice")
COORDINATOR_KINDS = ("coordinator_reminder", "digest")


def _url_problem(kind: str, url: str, any_host: bool) -> tuple[str, str] | None:
    """What is wrong with a robot's address (English, Chinese), or None."""
    if not url or len(url) > URL_MAX or not url.isascii() or not url.isprintable() or any(c.isspace() for c in url):
        return (f"the robot's webhook address, http(s)://…, at most {URL_MAX} characters of plain ASCII",
                f"请填写机器人的 Webhook 地址（https:// 开头，不超过 {URL_MAX} 个字符，不含空格或全角字符）")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- a port that is not a number raises here
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return "not an address that can be called", "地址格式不正确，请从机器人设置页面重新复制"
    if parts.username or parts.password:
        return "no user name or password in the address", "地址中不能包含用户名或密码"
    if not parts.hostname or parts.scheme not in ("https", "http"):
        return "an http(s):// address with a host", "地址须以 https:// 开头并包含主机名"
    if any_host:
        return None
    official = OFFICIAL_HOSTS.get(kind)
    if parts.scheme != "https" or (official and parts.hostname != official):
        where = f"https://{official}/…" if official else "https://…"
        return (f"a {kind} robot's address is {where} (another host or plain http only with "
                "WORKFLOW_CHANNELS_ANY_HOST, e.g. a bureau's own proxy)",
                f"{KIND_NAMES.get(kind, kind)}的地址须为 {where}（其他主机或 http 地址须由管理员开启 "
                "WORKFLOW_CHANNELS_ANY_HOST）")
    return None


def _may(by: Principal, path: str) -> None:
    if by.read_only or by.role not in ("admin", "coordinator") or not by.sees_path(path):
        raise Forbidden(f"a {by.role} may not configure the channels of {path}",
                        "只有管理员或本地区（及上级）的协调人员可以配置推送渠道")


def add_channel(db: Storage, by: Principal, now: datetime, *, jurisdiction_id: str | None, kind: str, url: str,
                audience: str, name: str, secret: str | None = None, unit_id: int | None = None,
                any_host: bool = False) -> ChannelRecord:
    """A new channel, every problem of the input at once; recorded on the operator stream
    ``channels`` (without its URL's key or its secret). WeCom and DingTalk robots are called at
    their platforms' own https hosts, a webhook over https, unless ``any_host`` (a bureau's proxy
    on its intranet; the tests' servers on 127.0.0.1)."""
    require_aware(now, "now")
    problems = ProblemList()
    kind, audience = (kind or "").strip(), (audience or "").strip()
    name, url = (name or "").strip(), (url or "").strip()
    secret = (secret or "").strip() or None
    if kind not in KINDS:
        problems.add("kind", f"one of {', '.join(KINDS)}; got {kind[:20]!r}",
                     f"渠道类型须为以下之一：{'、'.join(f'{KIND_NAMES[k]}（{k}）' for k in KINDS)}")
    if audience not in AUDIENCES:
        problems.add("audience", f"one of {', '.join(AUDIENCES)}; got {audience[:20]!r}",
                     f"接收对象须为以下之一：{'、'.join(f'{v}（{k}）' for k, v in AUDIENCES.items())}")
    wrong = _url_problem(kind, url, any_host)
    if wrong is not None:
        problems.add("url", *wrong)
    if kind == "webhook" and not secret:
        problems.add("secret", "a webhook needs a secret to sign its messages (HMAC-SHA256)",
                     "自有系统接口须设置签名密钥（用于 HMAC-SHA256 签名）")
    if kind == "wecom" and secret:
        problems.add("secret", "a WeCom group robot is not signed: leave the secret empty",
                     "企业微信群机器人不使用签名密钥，请留空")
    if secret is not None and (len(secret) > SECRET_MAX or not secret.isprintable()):
        problems.add("secret", f"at most {SECRET_MAX} printable characters", f"签名密钥至多 {SECRET_MAX} 个可打印字符")
    if not name or len(name) > NAME_MAX or not name.isprintable():
        problems.add("name", f"a name of 1-{NAME_MAX} characters, e.g. 太原市创建工作群",
                     f"请填写渠道名称（1 至 {NAME_MAX} 个字符），例如“太原市创建工作群”")
    if audience == "unit" and unit_id is None:
        problems.add("unit", "a unit's own channel names the unit", "接收对象为单个创建单位时须指定单位")
    if audience in ("units", "coordinators") and unit_id is not None:
        problems.add("unit", "a jurisdiction's group names no unit", "地区工作群不指定单位")
    problems.raise_if_any("cannot add the channel", "无法添加该推送渠道")
    if unit_id is not None:
        unit = db.directory.unit(unit_id)
        if unit is None or not by.sees(unit.id, unit.path or ""):
            raise NotFound(f"unit {unit_id} does not exist", f"单位 {unit_id} 不存在")
        jurisdiction_id = unit.jurisdiction_id
    found = db.directory.jurisdiction(jurisdiction_id or "")
    if found is None or not by.sees_path(found.path):
        raise NotFound(f"jurisdiction {jurisdiction_id!r} does not exist", f"地区 {jurisdiction_id!r} 不存在")
    _may(by, found.path)
    Robot(kind, url, secret)  # the transport's own checks (they hold: checked above)
    record = ChannelRecord(0, found.id, unit_id, audience, kind, url, secret, name, now, str(by.actor))
    with db.unit_of_work(core=True) as uow:
        channel_id = uow.channels.add(record)
        uow.operator.append("channels", "ChannelAdded", str(by.actor), now, {
            "channel": channel_id, "jurisdiction_id": found.id, "unit_id": unit_id, "audience": audience,
            "kind": kind, "name": name, "url": masked(url), "signed": secret is not None})
        uow.commit()
    added = db.channels.get(channel_id)
    assert added is not None
    return added


def list_channels(db: Storage, by: Principal) -> list[ChannelRecord]:
    """The channels of the person's subtree (an admin: all)."""
    if by.role not in ("admin", "coordinator", "auditor"):
        raise Forbidden(f"a {by.role} does not read the channels", "创建单位无权查看推送渠道")
    return db.channels.channels(None if by.role == "admin" else by.jurisdiction_path)


def disable_channel(db: Storage, by: Principal, channel_id: int, now: datetime) -> ChannelRecord:
    """Stop sending to a channel (its rows not yet delivered are cancelled when they come up)."""
    require_aware(now, "now")
    found = db.channels.get(channel_id)
    place = db.directory.jurisdiction(found.jurisdiction_id) if found else None
    if found is None or place is None or not by.sees_path(place.path):
        raise NotFound(f"channel {channel_id} does not exist", f"推送渠道 {channel_id} 不存在")
    _may(by, place.path)
    with db.unit_of_work(core=True) as uow:
        if uow.channels.disable(channel_id, now):
            uow.operator.append("channels", "ChannelDisabled", str(by.actor), now,
                                {"channel": channel_id, "name": found.name})
        uow.commit()
    done = db.channels.get(channel_id)
    assert done is not None
    return done


# ---------------------------------------------------------------- what the dispatcher writes

_MOBILE = re.compile(r"1[3-9]\d{9}")


def mobiles_of(contacts: Iterable[Mapping[str, Any]] | None) -> tuple[str, ...]:
    """The mainland mobile numbers among a unit's contacts (附件2's 联系方式 is one field: a
    landline such as 0351-2859734 is not one), to @ them in a group robot's message."""
    out: list[str] = []
    for contact in contacts or ():
        number = re.sub(r"[\s-]", "", str(contact.get("phone") or "")).removeprefix("+86")
        if _MOBILE.fullmatch(number) and number not in out:
            out.append(number)
    return tuple(out)


def deliveries_for(db: Storage, rows: Iterable[OutboxRecord]) -> list[OutboxEntry]:
    """The channel deliveries of mail rows (``channel_id`` None; a resend has none): see the
    module's text. Written with ON CONFLICT DO NOTHING, so asking twice writes nothing more."""
    rows = [r for r in rows if r.channel_id is None and ":resend:" not in r.dedupe_key
            and (r.kind in UNIT_KINDS or r.kind in COORDINATOR_KINDS)]
    if not rows:
        return []
    enabled = [c for c in db.channels.channels() if c.disabled_at is None]
    if not enabled:
        return []
    paths = {j.id: j.path for j in db.directory.jurisdictions()}
    by_id = {p: j for j, p in paths.items()}
    cases = db.read.case_states(sorted({r.case_id for r in rows if r.case_id is not None}))
    units = {c.case_id: c for c in db.read.cases_by_id(sorted(cases))}
    coordinators = {c.id: c for c in db.directory.coordinators()} if any(r.coordinator_id for r in rows) else {}
    out: list[OutboxEntry] = []
    for row in rows:
        if row.kind in UNIT_KINDS and row.case_id in cases and row.case_id in units:
            unit_id, jurisdiction_id = units[row.case_id].unit_id, units[row.case_id].jurisdiction_id
            targets = [c for c in enabled if c.audience == "unit" and c.unit_id == unit_id]
            if not any(contact.get("email") for contact in cases[row.case_id].contacts or []):
                targets += _nearest_group(enabled, "units", paths.get(jurisdiction_id, ""), by_id)
            out += [_entry(row, c, row.dedupe_key, f"@ch{c.id}") for c in targets]
        elif row.kind in COORDINATOR_KINDS and row.coordinator_id in coordinators:
            jurisdiction_id = coordinators[row.coordinator_id].jurisdiction_id
            kind, _, rest = row.dedupe_key.partition(":")
            rest = rest.partition(":")[2]  # the coordinator's id left out: one message a group, not one a person
            out += [_entry(row, c, f"{kind}:ch{c.id}:", rest) for c in enabled
                    if c.audience == "coordinators" and c.jurisdiction_id == jurisdiction_id]
    return out


def _nearest_group(enabled: list[ChannelRecord], audience: str, path: str, by_path: dict[str, str]
                   ) -> list[ChannelRecord]:
    """The groups of ``audience`` of the jurisdiction at ``path``, else of the nearest one above."""
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts), 0, -1):
        jurisdiction_id = by_path.get("/" + "/".join(parts[:i]) + "/")
        found = [c for c in enabled if c.audience == audience and c.jurisdiction_id == jurisdiction_id]
        if found:
            return found
    return []


def _entry(row: OutboxRecord, channel: ChannelRecord, head: str, tail: str) -> OutboxEntry:
    """The channel's row of ``row``; its key ``head + tail``, at most 200 characters, cut where it
    is a mail's key (never the channel's part)."""
    if "@ch" in tail:
        key = head[:200 - len(tail)] + tail
    else:
        key = head + tail[:200 - len(head)]
    return OutboxEntry(dedupe_key=key, kind=row.kind, round_id=row.round_id, milestone=row.milestone,
                       due_on=row.due_on, case_id=row.case_id, coordinator_id=row.coordinator_id, tier=row.tier,
                       context=json.loads(row.context) if row.context else None, channel_id=channel.id)

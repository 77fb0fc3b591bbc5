"""Group robots: WeCom (企业微信群机器人), DingTalk (钉钉自定义机器人, signed URLs) and a generic
JSON webhook (HMAC-signed, for a bureau's own system), delivered over HTTP.

A robot message carries the same content as the mail it stands beside (its subject and text),
laid out for each platform and cut to its limit (saying so at the end):

- WeCom: ``{"msgtype": "markdown", "markdown": {"content": "### 标题\\n正文"}}``; the content at
  most ``WECOM_MAX_BYTES`` (4096) bytes of UTF-8, the limit WeCom's documentation gives. WeCom
  @s by mobile number only in a text message (``mentioned_mobile_list``), so a message with
  people to @ is sent as ``text``, at most ``WECOM_TEXT_MAX_BYTES`` (2048) bytes.
- DingTalk: ``{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles", "isAtAll"}}``;
  each mobile to @ also written as ``@138…`` in the text (DingTalk's rule: an @ shows only when
  the number is in the text too); the URL signed with the robot's secret (``timestamp`` in ms
  and ``sign`` = Base64 of HMAC-SHA256(secret, "timestamp\\nsecret"), URL-encoded); the text at
  most ``DINGTALK_MAX_BYTES``.
- Webhook: ``{"id", "title", "text", "mentions"}`` as JSON, with ``X-Workflow-Timestamp`` (Unix
  seconds) and ``X-Workflow-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``
  so the receiver checks both the sender and the freshness. Never cut.

Outcomes (``DeliveryResult``, as the mail transports give): sent when the platform answers 2xx
and ``errcode`` 0 (the webhook: any 2xx); **temporary** on a timeout, a connection error, a 5xx,
a 429 or a platform's rate-limit code (WeCom 45009, DingTalk 130101), with ``retry_after``
seconds when the platform says (``Retry-After``); **permanent** on any other 4xx or error code
(a wrong key or signature, a blocked keyword), with the platform's own message.

httpx rather than apprise: apprise reports a delivery as True/False, while the outbox needs the
status, the platform's error code and ``Retry-After`` to choose between retrying and failing.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx

from .transport import DeliveryResult

KINDS = ("wecom", "dingtalk", "webhook")
KIND_NAMES = {"wecom": "企业微信群机器人", "dingtalk": "钉钉群机器人", "webhook": "自有系统接口"}
WECOM_MAX_BYTES = 4096
WECOM_TEXT_MAX_BYTES = 2048
DINGTALK_MAX_BYTES = 4096  # no limit found in DingTalk's pages we could read: WeCom's, the stricter
CUT_NOTE = "\n\n……（内容过长，以上为节选，全文见邮件或平台）"
RATE_LIMIT_CODES = {"wecom": {45009}, "dingtalk": {130101}}
DEFAULT_RETRY_AFTER = 60  # seconds, when a platform limits the rate without saying for how long
MAX_RETRY_AFTER = 6 * 3600  # a longer wait asked for is taken as this (the outbox's longest backoff)
BUSY_CODES = {"wecom": {-1}}  # WeCom's 系统繁忙: "建议稍候重试"
BUDGET = 120.0  # seconds a batch may spend on robots; the rest wait for the next batch
OFFICIAL_HOSTS = {"wecom": "qyapi.weixin.qq.com", "dingtalk": "oapi.dingtalk.com"}
TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Robot:
    """Where a robot message goes: the platform, its webhook URL (a secret: it carries the
    key or token), and the signing secret (DingTalk's ``SEC…``; the webhook's HMAC key)."""

    kind: str
    url: str
    secret: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown robot kind {self.kind!r}; kinds: {', '.join(KINDS)}")
        if self.kind == "webhook" and not self.secret:
            raise ValueError("a webhook needs a secret to sign its messages")


@dataclass(frozen=True, slots=True)
class RobotMessage:
    message_id: str  # the same id as the mail's (the receiver deduplicates on it)
    title: str
    text: str
    mobiles: tuple[str, ...] = ()  # the people to @ by their mobile numbers


@dataclass(frozen=True)
class RobotResult(DeliveryResult):
    retry_after: int | None = None  # seconds the platform asked us to wait (a rate limit)


def masked(url: str) -> str:
    """An address as people may see it: scheme and host; for the platforms' own hosts the path
    and the last four characters of the query (the key or token); for any other, only the
    last four characters of the path and query. Never a user name or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an address that cannot be read)"
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    if host in OFFICIAL_HOSTS.values():
        return f"{parts.scheme}://{host}{port}{parts.path}" + (f"?…{parts.query[-4:]}" if parts.query else "")
    return f"{parts.scheme}://{host}{port}/" + (f"…{rest[-4:]}" if rest.strip("/") else "")


def cut(text: str, limit: int, note: str = CUT_NOTE) -> str:
    """``text`` within ``limit`` bytes of UTF-8, cut at a character and ending with ``note``
    when it had to be cut."""
    if len(text.encode()) <= limit:
        return text
    if len(note.encode()) >= limit:  # no room for the note: the text alone, cut
        return text.encode()[:max(limit, 0)].decode(errors="ignore")
    room = limit - len(note.encode())
    out = text.encode()[:max(room, 0)].decode(errors="ignore")
    return out + note


def wecom_payload(msg: RobotMessage) -> dict[str, Any]:
    if msg.mobiles:
        content = cut(f"【{msg.title}】\n{msg.text}", WECOM_TEXT_MAX_BYTES)
        return {"msgtype": "text", "text": {"content": content, "mentioned_mobile_list": list(msg.mobiles)}}
    return {"msgtype": "markdown", "markdown": {"content": cut(f"### {msg.title}\n{msg.text}", WECOM_MAX_BYTES)}}


def dingtalk_payload(msg: RobotMessage) -> dict[str, Any]:
    mentions = " ".join(f"@{m}" for m in msg.mobiles)
    tail = f"\n\n{mentions}" if mentions else ""
    body = cut(f"### {msg.title}\n\n{msg.text}", DINGTALK_MAX_BYTES - len(tail.encode())) + tail
    return {"msgtype": "markdown", "markdown": {"title": msg.title[:64], "text": body},
            "at": {"atMobiles": list(msg.mobiles), "isAtAll": False}}


def webhook_payload(msg: RobotMessage) -> dict[str, Any]:
    return {"id": msg.message_id, "title": msg.title, "text": msg.text, "mentions": list(msg.mobiles)}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's ``sign``: URL-encoded Base64 of HMAC-SHA256(secret, "timestamp\\nsecret")."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The webhook's ``X-Workflow-Signature``: ``sha256=`` and the hex HMAC of "timestamp." + body."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def request_for(robot: Robot, msg: RobotMessage, now: datetime) -> tuple[str, bytes, dict[str, str]]:
    """(URL, body, headers) of the POST that delivers ``msg`` through ``robot`` at ``now``."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if robot.kind == "wecom":
        payload = wecom_payload(msg)
        url = robot.url
    elif robot.kind == "dingtalk":
        payload = dingtalk_payload(msg)
        url = robot.url
        if robot.secret:
            stamp = int(now.timestamp() * 1000)
            url += ("&" if "?" in url else "?") + f"timestamp={stamp}&sign={dingtalk_sign(robot.secret, stamp)}"
    else:
        payload = webhook_payload(msg)
        url = robot.url
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    if robot.kind == "webhook":
        assert robot.secret
        stamp = int(now.timestamp())
        headers.update({"X-Workflow-Timestamp": str(stamp), "X-Workflow-Signature":
                        webhook_signature(robot.secret, stamp, body), "X-Workflow-Message-Id": msg.message_id})
    return url, body, headers


def _retry_after(response: httpx.Response) -> int:
    """The seconds a platform asked us to wait (ASCII digits only; at most ``MAX_RETRY_AFTER``)."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isascii() and value.isdigit():
        return min(max(int(value), 1), MAX_RETRY_AFTER)
    return DEFAULT_RETRY_AFTER


def outcome(robot: Robot, msg: RobotMessage, response: httpx.Response) -> RobotResult:
    """What the platform's answer means for the outbox. Only a 2xx is delivered (a redirect is
    not followed: the address moved, a person must fix it); a webhook's body is never quoted
    back (it is a bureau's system, not a platform: its answer is not shown to people)."""
    status = response.status_code
    if status == 429 or status == 503:
        return RobotResult(msg.message_id, False, False, status, f"busy ({status})", _retry_after(response))
    if status >= 500:
        return RobotResult(msg.message_id, False, False, status, f"server error {status}")
    said = "" if robot.kind == "webhook" else f": {response.text[:200]}"
    if status >= 400:
        return RobotResult(msg.message_id, False, True, status, f"refused {status}{said}")
    if status >= 300 or status < 200:
        moved = httpx.URL(response.headers.get("Location", "")).host if response.headers.get("Location") else ""
        return RobotResult(msg.message_id, False, True, status,
                           f"answered {status} (redirected{' to ' + moved if moved else ''}): fix the address")
    if robot.kind == "webhook":
        return RobotResult(msg.message_id, True, code=status)
    try:
        answer = response.json()
        code = int(answer["errcode"])
        text = str(answer.get("errmsg", ""))[:200]
    except (ValueError, AttributeError, TypeError, KeyError, OverflowError):
        return RobotResult(msg.message_id, False, False, status, "an answer that is not the platform's JSON")
    if code == 0:
        return RobotResult(msg.message_id, True, code=status)
    if code in RATE_LIMIT_CODES.get(robot.kind, ()):
        return RobotResult(msg.message_id, False, False, code, f"rate limited: {text}", _retry_after(response))
    if code in BUSY_CODES.get(robot.kind, ()):
        return RobotResult(msg.message_id, False, False, code, f"platform busy: {text}")
    return RobotResult(msg.message_id, False, True, code, f"errcode {code}: {text}")


class RobotTransport:
    """Delivers robot messages over HTTP (one client a batch), within ``budget`` seconds a batch:
    the messages left when it is spent are answered "not tried" (temporary), so a platform's
    outage never holds the dispatcher past its lease."""

    def __init__(self, timeout: float = TIMEOUT, budget: float = BUDGET) -> None:
        self.timeout = timeout
        self.budget = budget

    async def send_many(self, messages: Sequence[tuple[Robot, RobotMessage, datetime]]) -> list[RobotResult]:
        out = []
        loop = asyncio.get_running_loop()
        until = loop.time() + self.budget
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            for robot, msg, now in messages:
                if loop.time() >= until:
                    out.append(RobotResult(msg.message_id, False, False, None,
                                           f"not tried: the batch's {self.budget:g} s for robots were spent"))
                    continue
                out.append(await self.send(client, robot, msg, now))
        return out

    async def send(self, client: httpx.AsyncClient, robot: Robot, msg: RobotMessage, now: datetime) -> RobotResult:
        try:
            url, body, headers = request_for(robot, msg, now)
            response = await client.post(url, content=body, headers=headers)
            return outcome(robot, msg, response)
        except httpx.TimeoutException:
            return RobotResult(msg.message_id, False, False, None, f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:  # refused, reset, DNS: try again later
            return RobotResult(msg.message_id, False, False, None, f"cannot reach the robot: {type(exc).__name__}")
        except Exception as exc:  # a bad address or answer must not stop the batch (its mails are recorded)
            return RobotResult(msg.message_id, False, False, None, f"cannot deliver: {type(exc).__name__}")


class RobotFolder:
    """Robot messages written to a folder instead of posted (rehearsals, ``workflow simulate``):
    one JSON file a message, ``<n>-<kind>.json``, holding the request as it would go out — the
    address with its key hidden, the headers, the body the platform would read. Idempotent by
    message id (a message written before is not written again)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    async def send_many(self, messages: Sequence[tuple[Robot, RobotMessage, datetime]]) -> list[RobotResult]:
        self.folder.mkdir(parents=True, exist_ok=True)
        out = []
        for robot, msg, now in messages:
            name = hashlib.sha256(msg.message_id.encode()).hexdigest()[:16]
            if not any(self.folder.glob(f"*-{robot.kind}-{name}.json")):
                url, body, headers = request_for(robot, msg, now)
                n = sum(1 for _ in self.folder.glob("*.json")) + 1
                record = {"to": masked(urlsplit(url)._replace(query="").geturl()), "headers": headers,
                          "body": json.loads(body)}
                (self.folder / f"{n:04d}-{robot.kind}-{name}.json").write_text(
                    json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            out.append(RobotResult(msg.message_id, True, code=200))
        return out

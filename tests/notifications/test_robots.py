"""WeCom, DingTalk and webhook robots (``notifications/robots.py``): each platform's format and
limit, DingTalk's signed URL and the webhook's HMAC, and every outcome the outbox acts on —
against fake robot servers on 127.0.0.1 that check the format and the signature and can fail."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from notifications.robots import (
    CUT_NOTE,
    DINGTALK_MAX_BYTES,
    WECOM_MAX_BYTES,
    WECOM_TEXT_MAX_BYTES,
    Robot,
    RobotMessage,
    RobotTransport,
    cut,
    dingtalk_payload,
    request_for,
    wecom_payload,
)

from ..robot_servers import RobotServers

NOW = datetime(2021, 10, 17, 1, 0, tzinfo=UTC)  # 09:00 Beijing time, three days before October 20
MSG = RobotMessage("<r-1@workflow.test>", "【提醒】自评材料报送截止：2021年10月20日",
                   "太原市机关事务管理局：\n贵单位尚未报送自评材料，截止日期为2021年10月20日，还有3天。")


@pytest.fixture(scope="module")
def robots():
    with RobotServers() as servers:
        yield servers


def send(robot: Robot, msg: RobotMessage = MSG, timeout: float = 1.0):
    [result] = asyncio.run(RobotTransport(timeout=timeout).send_many([(robot, msg, NOW)]))
    return result


# ---------------------------------------------------------------- formats

def test_text_is_cut_at_a_character_within_the_limit_and_says_so() -> None:
    assert cut("短文", 100) == "短文"
    long = "节约型机关" * 1000  # 15,000 bytes
    out = cut(long, 4096)
    assert len(out.encode()) <= 4096 and out.endswith(CUT_NOTE) and out.startswith("节约型机关")
    out.encode().decode()  # whole characters only


def test_wecom_sends_markdown_and_a_text_message_when_someone_is_to_be_mentioned() -> None:
    payload = wecom_payload(MSG)
    assert payload["msgtype"] == "markdown" and payload["markdown"]["content"].startswith(f"### {MSG.title}\n")
    long = RobotMessage("id", "标题", "正文" * 3000, ("13800001111",))
    text = wecom_payload(long)
    assert text["msgtype"] == "text" and text["text"]["mentioned_mobile_list"] == ["13800001111"]
    assert len(text["text"]["content"].encode()) <= WECOM_TEXT_MAX_BYTES
    assert len(wecom_payload(RobotMessage("id", "t", "字" * 5000))["markdown"]["content"].encode()) <= WECOM_MAX_BYTES


def test_dingtalk_writes_each_mention_into_the_text_even_when_it_cuts() -> None:
    msg = RobotMessage("id", "标题", "字" * 5000, ("13800001111", "13900002222"))
    payload = dingtalk_payload(msg)
    text = payload["markdown"]["text"]
    assert len(text.encode()) <= DINGTALK_MAX_BYTES and CUT_NOTE in text
    assert text.endswith("@13800001111 @13900002222")
    assert payload["at"] == {"atMobiles": ["13800001111", "13900002222"], "isAtAll": False}


def test_dingtalks_url_is_signed_as_its_documentation_says() -> None:
    url, _, _ = request_for(Robot("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=t", "SECabc"),
                            MSG, NOW)
    query = parse_qs(urlsplit(url).query)
    stamp = query["timestamp"][0]
    assert stamp == str(int(NOW.timestamp() * 1000))  # milliseconds
    expected = base64.b64encode(hmac.new(b"SECabc", f"{stamp}\nSECabc".encode(), hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected] and query["access_token"] == ["t"]


def test_a_webhook_without_a_secret_or_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        Robot("webhook", "http://127.0.0.1/hook")
    with pytest.raises(ValueError, match="unknown robot kind"):
        Robot("feishu", "http://127.0.0.1/hook")


# ---------------------------------------------------------------- against the fake servers

@pytest.mark.parametrize("kind", ["wecom", "dingtalk", "webhook"])
def test_each_platform_accepts_the_message_as_formatted_and_signed(robots: RobotServers, kind: str) -> None:
    before = len(robots.received[kind])
    result = send(robots.robot(kind))
    assert result.ok, result
    got = robots.received[kind][before:]
    assert len(got) == 1
    if kind == "wecom":
        assert MSG.title in got[0]["markdown"]["content"]
    elif kind == "dingtalk":
        assert got[0]["markdown"]["title"] == MSG.title and got[0]["timestamp"] == int(NOW.timestamp() * 1000)
    else:
        assert got[0] == {"id": MSG.message_id, "title": MSG.title, "text": MSG.text, "mentions": []}


def test_a_mention_reaches_dingtalk_and_wecom(robots: RobotServers) -> None:
    msg = RobotMessage("<r-2@workflow.test>", "逾期提醒", "请尽快报送。", ("13800001111",))
    assert send(robots.robot("dingtalk"), msg).ok and send(robots.robot("wecom"), msg).ok
    assert robots.received["dingtalk"][-1]["at"]["atMobiles"] == ["13800001111"]
    assert robots.received["wecom"][-1]["text"]["mentioned_mobile_list"] == ["13800001111"]


@pytest.mark.parametrize("kind, wrong", [("wecom", {"key": "stolen"}), ("dingtalk", {"secret": "SECwrong"}),
                                         ("dingtalk", {"key": "gone"}), ("webhook", {"secret": "guessed"})])
def test_a_wrong_key_or_signature_is_permanent_with_the_platforms_reason(robots: RobotServers, kind: str,
                                                                         wrong: dict[str, str]) -> None:
    result = send(robots.robot(kind, **wrong))
    assert not result.ok and result.permanent
    assert result.detail  # the platform's own words: "sign not match", "invalid webhook url", 401 …
    assert robots.refused[kind]


@pytest.mark.parametrize("kind", ["wecom", "dingtalk", "webhook"])
@pytest.mark.parametrize("mode, permanent, retry_after", [
    ("500", False, None), ("400", True, None), ("429", False, 7), ("timeout", False, None)])
def test_failures_are_temporary_or_permanent_as_the_outbox_needs(robots: RobotServers, kind: str, mode: str,
                                                                  permanent: bool, retry_after: int | None) -> None:
    robots.fail(kind, mode)
    result = send(robots.robot(kind), timeout=0.5)
    assert not result.ok and result.permanent is permanent, result
    assert result.retry_after == retry_after
    assert send(robots.robot(kind)).ok  # the next one goes through


@pytest.mark.parametrize("kind, code", [("wecom", 45009), ("dingtalk", 130101)])
def test_a_platforms_own_rate_limit_is_temporary_and_waits(robots: RobotServers, kind: str, code: int) -> None:
    robots.fail(kind, "rate")
    result = send(robots.robot(kind))
    assert not result.ok and not result.permanent and result.code == code and result.retry_after == 60


def test_an_unreachable_robot_is_temporary() -> None:
    result = send(Robot("wecom", "http://127.0.0.1:9/cgi-bin/webhook/send?key=x"))
    assert not result.ok and not result.permanent and "cannot reach" in result.detail



def test_a_rehearsal_writes_each_message_once_as_the_platform_would_receive_it(tmp_path) -> None:
    import json as _json

    from notifications.robots import RobotFolder

    folder = RobotFolder(tmp_path / "robots")
    robot = Robot("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=secret-token", "SECabc")
    for _ in range(2):  # a second delivery of the same message writes nothing more
        [result] = asyncio.run(folder.send_many([(robot, MSG, NOW)]))
        assert result.ok
    [written] = list((tmp_path / "robots").glob("*.json"))
    record = _json.loads(written.read_text(encoding="utf-8"))
    assert record["to"] == "https://oapi.dingtalk.com/robot/send"  # the token and the signature left out
    assert record["body"]["markdown"]["title"] == MSG.title and written.name.startswith("0001-dingtalk-")


def test_every_mail_template_ends_with_the_line_a_robot_message_replaces() -> None:
    """The dispatcher turns the mail's "此邮件由系统自动发送" into "此消息…" for a robot: every text
    template that says it was sent automatically says it in exactly those words."""
    from pathlib import Path

    import notifications
    from workflow.service.dispatch import MAIL_FOOTER

    templates = sorted((Path(notifications.__file__).parent / "templates").glob("*.txt"))
    bodies = [t for t in templates if not t.name.endswith(".subject.txt")]
    assert len(bodies) >= 9
    assert [t.name for t in bodies if MAIL_FOOTER not in t.read_text(encoding="utf-8")] == []


def _answer(status: int, body: object = None, headers: dict[str, str] | None = None):
    import httpx

    content = body.encode() if isinstance(body, str) else _json_bytes(body)
    return httpx.Response(status, content=content, headers=[(k.encode(), v.encode()) for k, v in (headers or {}).items()])


def _json_bytes(body: object) -> bytes:
    import json as _json

    return b"" if body is None else _json.dumps(body, ensure_ascii=False).encode()


@pytest.mark.parametrize("kind, status, body, headers, ok, permanent, retry_after", [
    ("webhook", 302, None, {"Location": "https://moved.example/hook?token=x"}, False, True, None),  # not delivered
    ("wecom", 200, {"errcode": -1, "errmsg": "系统繁忙"}, None, False, False, None),  # WeCom: retry later
    ("wecom", 200, {"errmsg": "no code"}, None, False, False, None),  # not the platform's answer
    ("dingtalk", 200, '{"errcode": 1e400}', None, False, False, None),  # an absurd number
    ("wecom", 429, {}, {"Retry-After": "²"}, False, False, 60),  # not ASCII digits
    ("wecom", 429, {}, {"Retry-After": "1000000000000"}, False, False, 6 * 3600),  # capped
    ("webhook", 503, None, {"Retry-After": "30"}, False, False, 30),
    ("webhook", 400, {"secret": "internal detail"}, None, False, True, None),
])
def test_every_answer_is_classified_and_none_raises(kind: str, status: int, body: object,
                                                    headers: dict[str, str] | None, ok: bool, permanent: bool,
                                                    retry_after: int | None) -> None:
    from notifications.robots import outcome

    robot = Robot(kind, "https://example.test/x", "s" if kind != "wecom" else None)
    result = outcome(robot, MSG, _answer(status, body, headers))
    assert (result.ok, result.permanent, result.retry_after) == (ok, permanent, retry_after), result
    assert "internal detail" not in result.detail and "token=x" not in result.detail  # a webhook's body is not echoed


def test_an_address_that_cannot_be_called_is_a_temporary_failure_not_an_exception() -> None:
    result = send(Robot("wecom", "https://qyapi.weixin.qq.com:abc/cgi-bin/webhook/send?key=x"))
    assert not result.ok and not result.permanent and result.detail.startswith("cannot")


def test_a_batch_stops_calling_robots_when_its_time_is_spent(robots: RobotServers) -> None:
    robots.fail("wecom", "timeout", "timeout")
    transport = RobotTransport(timeout=0.3, budget=0.5)
    results = asyncio.run(transport.send_many([(robots.robot("wecom"), MSG, NOW)] * 4))
    assert not any(r.ok for r in results) and all(not r.permanent for r in results)
    assert any("not tried" in r.detail for r in results)


def test_addresses_are_shown_without_keys_or_passwords() -> None:
    from notifications.robots import masked

    assert masked("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-5aaa") == \
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?…5aaa"
    assert masked("https://user:p4ssw0rd@hook.example.cn/hooks/SECRETPATHTOKEN") == "https://hook.example.cn/…OKEN"
    assert masked("http://[::1/x") == "(an address that cannot be read)"


def test_cut_stays_within_a_limit_smaller_than_its_note() -> None:
    assert len(cut("节约" * 100, 30).encode()) <= 30


def test_no_log_line_carries_a_robots_key(robots: RobotServers, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import structlog

    from workflow.logging import configure_logging

    from ..robot_servers import DINGTALK_TOKEN, WECOM_KEY

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("httpx", "httpcore")})
    structlog_config = structlog.get_config()
    try:
        configure_logging("INFO")  # the product's set-up (it replaces the root's handlers) ...
        root.addHandler(caplog.handler)  # ... and the test's capture beside it
        logging.getLogger("workflow.test").info("capture works")
        assert send(robots.robot("wecom")).ok and send(robots.robot("dingtalk")).ok
        messages = [r.getMessage() for r in caplog.records]
    finally:
        root.handlers[:], level, levels = saved
        structlog.configure(**structlog_config)  # the product's set-up caches loggers: not for later tests
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
    assert "capture works" in messages
    assert not [m for m in messages if WECOM_KEY in m or DINGTALK_TOKEN in m], messages

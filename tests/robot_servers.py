"""Fake WeCom, DingTalk and webhook robot servers on 127.0.0.1, for the tests.

One uvicorn server in a thread answers the three platforms as their documentation describes
(``notifications/robots.py``): it checks the key or token in the URL, DingTalk's signature, the
webhook's HMAC signature, each payload's shape, its limit and DingTalk's @ rule, and records what
it accepted. ``fail(kind, *modes)`` makes the next deliveries to a platform fail, one mode each:
``"timeout"`` (no answer for longer than the client waits), ``"500"``, ``"400"``, ``"429"`` (with
``Retry-After: 7``), ``"429long"`` (``Retry-After: 600``), ``"rate"`` (the platform's own rate-limit code, 200 with errcode).

    with RobotServers() as robots:
        robot = robots.robot("wecom")   # a notifications.robots.Robot pointing here
        ...
        robots.received["wecom"]        # the payloads accepted, in order
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import defaultdict
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from notifications.robots import DINGTALK_MAX_BYTES, WECOM_MAX_BYTES, WECOM_TEXT_MAX_BYTES, Robot

WECOM_KEY = "693a91f6-test-key"
DINGTALK_TOKEN = "e9a8118c8a3d-test-token"
DINGTALK_SECRET = "SEC0123456789abcdef-test"
WEBHOOK_SECRET = "bureau-shared-secret"
SLOW = 3.0  # seconds a "timeout" answer takes (the tests' clients wait less)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RobotServers:
    def __init__(self) -> None:
        self.port = _free_port()
        self.received: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.refused: dict[str, list[str]] = defaultdict(list)  # why each refused request was refused
        self._fail: dict[str, list[str]] = defaultdict(list)
        self._lock = threading.Lock()
        self.app = self._app()
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, name="robot-servers", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def robot(self, kind: str, *, secret: str | None = None, key: str | None = None) -> Robot:
        """A robot of ``kind`` pointing at this server (``secret``/``key``: a wrong one, to test refusals)."""
        if kind == "wecom":
            return Robot("wecom", f"{self.base}/cgi-bin/webhook/send?key={key or WECOM_KEY}")
        if kind == "dingtalk":
            return Robot("dingtalk", f"{self.base}/robot/send?access_token={key or DINGTALK_TOKEN}",
                         secret or DINGTALK_SECRET)
        return Robot("webhook", f"{self.base}/hook", secret or WEBHOOK_SECRET)

    def fail(self, kind: str, *modes: str) -> None:
        with self._lock:
            self._fail[kind].extend(modes)

    def __enter__(self) -> RobotServers:
        self._thread.start()
        for _ in range(200):
            if self._server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError("the fake robot servers did not start")

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    # ------------------------------------------------------------------ the platforms

    def _next_failure(self, kind: str) -> str | None:
        with self._lock:
            return self._fail[kind].pop(0) if self._fail[kind] else None

    async def _failure(self, kind: str) -> Response | None:
        mode = self._next_failure(kind)
        if mode is None:
            return None
        if mode == "timeout":
            await asyncio.sleep(SLOW)
            return JSONResponse({"errcode": 0, "errmsg": "ok (too late)"})
        if mode == "rate":
            code = {"wecom": 45009, "dingtalk": 130101}.get(kind, 0)
            return JSONResponse({"errcode": code, "errmsg": "api freq out of limit"})
        if mode in ("429", "429long"):
            wait = "7" if mode == "429" else "600"
            return JSONResponse({"errcode": -1, "errmsg": "too many"}, status_code=429, headers={"Retry-After": wait})
        return JSONResponse({"errcode": -1, "errmsg": f"failing with {mode}"}, status_code=int(mode))

    def _refuse(self, kind: str, why: str, errcode: int, status: int = 200) -> JSONResponse:
        self.refused[kind].append(why)
        return JSONResponse({"errcode": errcode, "errmsg": why}, status_code=status)

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/cgi-bin/webhook/send")
        async def wecom(request: Request) -> Response:
            failed = await self._failure("wecom")
            if failed is not None:
                return failed
            if request.query_params.get("key") != WECOM_KEY:
                return self._refuse("wecom", "invalid webhook url", 93000)
            body = json.loads(await request.body())
            kind = body.get("msgtype")
            if kind == "markdown":
                content = body["markdown"]["content"]
                limit = WECOM_MAX_BYTES
            elif kind == "text":
                content = body["text"]["content"]
                limit = WECOM_TEXT_MAX_BYTES
                if not all(isinstance(m, str) for m in body["text"].get("mentioned_mobile_list", [])):
                    return self._refuse("wecom", "mentioned_mobile_list must be strings", 40008)
            else:
                return self._refuse("wecom", f"invalid message type {kind!r}", 40008)
            if not isinstance(content, str) or not content:
                return self._refuse("wecom", "empty content", 44004)
            if len(content.encode()) > limit:
                return self._refuse("wecom", f"content exceed max length {limit}", 40058)
            self.received["wecom"].append(body)
            return JSONResponse({"errcode": 0, "errmsg": "ok"})

        @app.post("/robot/send")
        async def dingtalk(request: Request) -> Response:
            failed = await self._failure("dingtalk")
            if failed is not None:
                return failed
            q = request.query_params
            if q.get("access_token") != DINGTALK_TOKEN:
                return self._refuse("dingtalk", "token is not exist", 300001)
            stamp = q.get("timestamp", "")
            expected = base64.b64encode(hmac.new(DINGTALK_SECRET.encode(), f"{stamp}\n{DINGTALK_SECRET}".encode(),
                                                 hashlib.sha256).digest()).decode()
            # the sign is sent URL-encoded: the query string's decoding gives the Base64 back
            if not stamp.isdigit() or not hmac.compare_digest(q.get("sign", ""), expected):
                return self._refuse("dingtalk", "sign not match", 310000)
            body = json.loads(await request.body())
            if body.get("msgtype") != "markdown" or not body.get("markdown", {}).get("title"):
                return self._refuse("dingtalk", "param error: markdown needs title and text", 40035)
            text = body["markdown"].get("text", "")
            if len(text.encode()) > DINGTALK_MAX_BYTES:
                return self._refuse("dingtalk", "text too long", 40035)
            missing = [m for m in body.get("at", {}).get("atMobiles", []) if f"@{m}" not in text]
            if missing:  # DingTalk shows an @ only when the number is in the text too
                return self._refuse("dingtalk", f"@ not in text: {missing}", 40035)
            self.received["dingtalk"].append({**body, "timestamp": int(stamp)})
            return JSONResponse({"errcode": 0, "errmsg": "ok"})

        @app.post("/hook")
        async def webhook(request: Request) -> Response:
            failed = await self._failure("webhook")
            if failed is not None:
                return failed
            raw = await request.body()
            stamp = request.headers.get("X-Workflow-Timestamp", "")
            sent = request.headers.get("X-Workflow-Signature", "")
            mac = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
            if not stamp.isdigit() or not hmac.compare_digest(sent, f"sha256={mac}"):
                self.refused["webhook"].append("bad signature")
                return JSONResponse({"error": "bad signature"}, status_code=401)
            body = json.loads(raw)
            if body.get("id") != request.headers.get("X-Workflow-Message-Id"):
                self.refused["webhook"].append("id differs from its header")
                return JSONResponse({"error": "id"}, status_code=400)
            self.received["webhook"].append(body)
            return JSONResponse({"ok": True})

        return app

"""Dispatch of 10,000 mails to an SMTP server in another process, against a bare sender.

Setup (not timed): N cases whose units have a contact email, and the sweep that writes N
reminder rows; an aiosmtpd server (the Sink handler) in a separate process on 127.0.0.1.

Timed, in one run:
- ``ours``: the dispatcher until the outbox is empty: claim a batch, render each mail
  (Jinja2 templates, multipart text + HTML, the .ics), send the batch over one SMTP
  connection, record every outcome;
- ``floor``: aiosmtplib alone, ``send_message`` of equivalent messages (EmailMessage objects
  built in advance, not timed) over the same number of connections (one per batch);
- ``floor_bytes``: the barest sender, ``sendmail`` of the same messages already serialised
  to bytes (not timed), same connections.
``ratio`` = floor time / ours (≥ 0.8 wanted); ``ratio_bytes`` the same against the barest
sender. The last line is one JSON object.

    python bench/dispatch.py [--mails 10000] [--batch 200]
"""
from __future__ import annotations

import sys
from pathlib import Path

# bench/transitions.py is named like the `transitions` package: keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import email.policy  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date, datetime, timedelta  # noqa: E402

import aiosmtplib  # noqa: E402
from sqlalchemy import text  # noqa: E402

from notifications import Address, Attachment, OutgoingMessage, SmtpTransport, deadline_event, render, to_email  # noqa: E402
from workflow.adapters.calendar_files import CalendarCatalog  # noqa: E402
from workflow.clock import BUSINESS_TZ  # noqa: E402
from workflow.config import REPO_ROOT  # noqa: E402
from workflow.service.deadlines import sweep  # noqa: E402
from workflow.service.dispatch import DispatchSettings, dispatch  # noqa: E402


def _load_prepare():
    """The same province set-up as bench/sweep.py (loaded by path: this folder is off sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_sweep", Path(__file__).resolve().parent / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.prepare


prepare = _load_prepare()

NOW = datetime(2021, 10, 7, 9, 0, tzinfo=BUSINESS_TZ)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Sink"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the SMTP server did not start")


def floor_messages(n: int) -> list:
    sender = Address("noreply@workflow.local", "节约型机关创建工作")
    out = []
    for i in range(n):
        r = render("reminder", {"unit_name": f"单位{i:06d}", "round_title": "山西省2021年节约型机关创建工作",
                                "milestone_name": "自评报告、自评打分表和佐证材料报送", "due_date": date(2021, 10, 20),
                                "days_left": 13, "case_id": i, "what_to_do": "请对照评价标准逐项自评。",
                                "contact_line": "山西省机关事务管理局"})
        ics = deadline_event(uid=f"r{i}@workflow.local", summary="自评报送截止", description="请对照评价标准逐项自评。",
                             due=date(2021, 10, 20), stamp=NOW)
        msg = OutgoingMessage(message_id=f"<reminder.{i}@workflow.local>", sender=sender,
                              to=(Address(f"u{i}@units.example", "联系人"),), subject=r.subject, text=r.text,
                              html=r.html, attachments=(Attachment("deadline.ics", "text/calendar; method=PUBLISH; "
                                                                   "charset=utf-8", ics),))
        out.append(to_email(msg, date=NOW))
    return out


async def bare_send(port: int, messages: list, batch: int) -> None:
    """aiosmtplib's usual call: send_message(EmailMessage), one connection per batch."""
    for start in range(0, len(messages), batch):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for message in messages[start:start + batch]:
            await client.send_message(message)
        await client.quit()


async def bare_send_bytes(port: int, messages: list[tuple[str, list[str], bytes]], batch: int) -> None:
    """The barest sender: sendmail() of bytes serialised in advance, one connection per batch."""
    for start in range(0, len(messages), batch):
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for sender, recipients, data in messages[start:start + batch]:
            await client.sendmail(sender, recipients, data)
        await client.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mails", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()
    port = free_port()
    server = start_server(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = prepare(f"sqlite:///{tmp}/bench.db", args.mails)
            with db.engine.begin() as conn:  # everyone still owes the self-assessment
                conn.execute(text("UPDATE cases SET state = 'registered'"))
            calendars = CalendarCatalog(REPO_ROOT / "calendars")
            sweep(db, calendars, datetime(2021, 6, 1, 9, 0, tzinfo=BUSINESS_TZ))
            sweep(db, calendars, datetime(2021, 6, 6, 9, 0, tzinfo=BUSINESS_TZ))
            reminders = sweep(db, calendars, NOW).reminders
            settings = DispatchSettings(batch=args.batch)
            transport = SmtpTransport("127.0.0.1", port, starttls=False)
            messages = floor_messages(reminders)

            t = time.perf_counter()
            sent = 0
            while True:
                r = asyncio.run(dispatch(db, calendars, transport, NOW + timedelta(minutes=5), settings))
                sent += r.sent
                if r.claimed == 0:
                    break
            ours = time.perf_counter() - t
            t = time.perf_counter()
            asyncio.run(bare_send(port, messages, args.batch))
            floor = time.perf_counter() - t
            raw = [(m["From"].addresses[0].addr_spec, [a.addr_spec for a in m["To"].addresses],
                    m.as_bytes(policy=email.policy.SMTP)) for m in messages]
            t = time.perf_counter()
            asyncio.run(bare_send_bytes(port, raw, args.batch))
            floor_bytes = time.perf_counter() - t
            db.engine.dispose()
    finally:
        server.terminate()
        server.wait(10)
    result = {"benchmark": "dispatch", "mails": sent, "batch": args.batch,
              "connections": -(-reminders // args.batch), "ours_per_s": round(sent / ours, 1),
              "floor_per_s": round(len(messages) / floor, 1), "ratio": round(floor / ours, 3),
              "floor_bytes_per_s": round(len(raw) / floor_bytes, 1), "ratio_bytes": round(floor_bytes / ours, 3)}
    print(f"dispatch: ours {sent / ours:,.0f} mails/s; bare aiosmtplib send_message {len(messages) / floor:,.0f}/s "
          f"(ratio {floor / ours:.2f}); sendmail of bytes made in advance {len(raw) / floor_bytes:,.0f}/s "
          f"(ratio {floor_bytes / ours:.2f})", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""The audit chain anchored outside the database: signed checkpoints of every chain's head.

What ``audit verify`` cannot see from inside the database — a case's last event deleted with the
case row rolled back to match, a history rewritten with every hash after the change recomputed,
a duty stream cut short — is found against the checkpoints; and the checkpoints themselves are
checked (a file missing from the sequence, one altered, a wrong public key). Plain ``audit
verify`` also names gaps in a case's sequence numbers and filing batches that disagree with the
events naming them. On SQLite and PostgreSQL (the ``db`` fixture).
"""
from __future__ import annotations

import base64
import json
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update
from typer.testing import CliRunner

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.checkpoint_files import CheckpointDirectory, Ed25519Signer, Ed25519Verifier, generate_key
from workflow.adapters.db import counts
from workflow.adapters.db.store import Database
from workflow.adapters.db.tables import filing_batches
from workflow.adapters.scheduler import build_scheduler
from workflow.bootstrap import App
from workflow.clock import ManualClock
from workflow.config import REPO_ROOT, Settings
from workflow.domain.duties import apply_duty, record_done, record_missed
from workflow.domain.errors import AlreadyExists, ConfigError
from workflow.domain.events import canonical_json, chain_hash
from workflow.service.audit import Finding, verify
from workflow.service.cases import perform_action
from workflow.service.checkpoints import (
    CheckpointAudit,
    canonical,
    merkle_root,
    verify_checkpoints,
    write_checkpoint,
)
from workflow.service.oversight import file_round
from workflow.service.ports import ChainHead

from ..support import (
    CALENDARS,
    COORDINATOR,
    OPERATOR,
    OPERATOR_NOW,
    RUBRICS,
    attach_documents,
    fake_sha,
    open_shanxi,
    sheet_for,
    sheet_with,
    unit_actor,
)

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
RUBRIC = RUBRICS.get("shanxi-2020")
CITY_REPORT = {d.id: d for d in CALENDARS.get("shanxi-2021").duties()}["city_report"]


# ---------------------------------------------------------------- the world and its tampering
def _prepare(db: Database, case_id: int, at: datetime = NOW) -> None:
    """Self-assessment, one evidence file, the documents, submitted (6 events)."""
    unit = unit_actor(case_id)
    perform_action(db, case_id, "self_assess", {"entries": sheet_with(RUBRIC, {"1.1.1": "9"})}, unit, at)
    perform_action(db, case_id, "attach_evidence", {"criterion": "1.1.1", "sha256": fake_sha("x"),
                                                    "filename": "指标.pdf", "size": 10, "type": "pdf"}, unit, at)
    attach_documents(db, case_id, unit, at)
    perform_action(db, case_id, "submit", {}, unit, at)


def _verified(db: Database, case_id: int, total: str = "79.5", at: datetime = NOW) -> None:
    perform_action(db, case_id, "verify", {"entries": sheet_for(RUBRIC, total)}, COORDINATOR, at)


@pytest.fixture
def history(db: Database) -> dict[str, Any]:
    """Shanxi 2021 (35 cases); cases 3 and 4 verified (7 events each). ``row4``: case 4's row as
    it was before its last event, what an insider rolls it back to."""
    open_shanxi(db, NOW)
    _prepare(db, 3)
    _verified(db, 3)
    _prepare(db, 4)
    row4 = _row(db, "cases", "id = 4")
    _verified(db, 4)
    return {"row4": row4}


def _sql(db: Database, statement: str, **params: Any) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def _row(db: Database, table: str, where: str) -> dict[str, Any]:
    with db.engine.connect() as conn:
        return dict(conn.execute(text(f"SELECT * FROM {table} WHERE {where}")).mappings().one())


def _put_back(db: Database, table: str, where: str, row: dict[str, Any]) -> None:
    """Write a row's columns back as they were (rolling the projection back to match)."""
    columns = ", ".join(f"{name} = :{name}" for name in row)
    _sql(db, f"UPDATE {table} SET {columns} WHERE {where}", **row)


@pytest.fixture
def unguarded(db: Database) -> Iterator[Any]:
    """Drops the append-only triggers of events and duty events (as the database's owner could),
    and puts them back afterwards (the PostgreSQL schema is shared by the session)."""

    def drop() -> None:
        if db.is_sqlite:
            for name in ("events_no_update", "events_no_delete", "duty_events_no_update", "duty_events_no_delete"):
                _sql(db, f"DROP TRIGGER {name}")
        else:
            _sql(db, "DROP TRIGGER events_append_only ON events")
            _sql(db, "DROP TRIGGER duty_events_append_only ON duty_events")

    yield drop
    if not db.is_sqlite:
        for table in ("events", "duty_events"):
            _sql(db, f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            _sql(db, f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                     "FOR EACH ROW EXECUTE FUNCTION events_append_only()")


@pytest.fixture
def key(tmp_path: Path) -> dict[str, Any]:
    private = tmp_path / "keys" / "checkpoint-ed25519.pem"
    public, _ = generate_key(private)
    return {"private": private, "public": public, "signer": Ed25519Signer.from_file(private),
            "verifier": Ed25519Verifier.from_file(public)}


@pytest.fixture
def store(tmp_path: Path) -> CheckpointDirectory:
    return CheckpointDirectory(tmp_path / "checkpoints")


def _checkpoint(db: Database, store: CheckpointDirectory, key: dict[str, Any], at: datetime = NOW) -> Any:
    return write_checkpoint(db, store, key["signer"], at).checkpoint


def _against(db: Database, store: CheckpointDirectory, key: dict[str, Any]) -> CheckpointAudit:
    return verify_checkpoints(db, store, key["verifier"])


def _at(moment: datetime = NOW) -> str:
    return moment.isoformat(timespec="microseconds")


# ---------------------------------------------------------------- the format
def test_a_checkpoint_is_the_signed_head_of_every_chain(db: Database, history: dict, store: CheckpointDirectory,
                                                        key: dict) -> None:
    checkpoint = _checkpoint(db, store, key)
    document = json.loads((store.directory / "checkpoint-00000001.json").read_bytes())
    body = document["checkpoint"]
    assert set(document) == {"checkpoint", "signature"}
    assert (body["format"], body["sequence"], body["previous"], body["created_at"]) == (
        "workflow-checkpoint/1", 1, None, "2021-10-12T02:00:00.000000+00:00")
    # the operator streams: the jurisdictions' and units' imports and the round's opening, one event each
    assert body["counts"] == {"cases": 35, "case_events": 35 + 2 * 6, "duty_streams": 0, "duty_events": 0,
                              "operator_streams": 3, "operator_events": 3}
    assert [c[:3] for c in body["chains"][-3:]] == [["operator", "operator/jurisdictions", 1],
                                                    ["operator", "operator/rounds", 1], ["operator", "operator/units", 1]]
    assert body["chains"][:4] == [["case", "1", 1, body["chains"][0][3]], ["case", "2", 1, body["chains"][1][3]],
                                  ["case", "3", 7, checkpoint.chains[2].hash], ["case", "4", 7, body["chains"][3][3]]]
    with db.unit_of_work() as uow:
        assert body["chains"][2][3] == uow.events(3)[-1].hash
    assert body["key_id"] == key["verifier"].key_id() and len(body["key_id"]) == 64
    assert key["verifier"].verify(canonical(body), base64.b64decode(document["signature"]))
    assert body["merkle_root"] == merkle_root(checkpoint.chains) == checkpoint.merkle_root
    second = _checkpoint(db, store, key, NOW + timedelta(hours=1))
    assert (second.sequence, second.previous) == (2, checkpoint.digest())
    assert _against(db, store, key).ok


def test_the_merkle_root_is_rfc_6962s() -> None:
    import hashlib

    def h(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    heads = [ChainHead("case", str(i), i, f"{i:064x}") for i in range(1, 4)]
    leaves = [h(b"\x00" + json.dumps([x.kind, x.key, x.seq, x.hash], separators=(",", ":")).encode()) for x in heads]
    assert merkle_root(heads) == h(b"\x01" + h(b"\x01" + leaves[0] + leaves[1]) + leaves[2]).hex()
    assert merkle_root(heads[:1]) == leaves[0].hex()
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()


# ---------------------------------------------------------------- what only the checkpoints show
def test_a_deleted_last_event_with_the_row_rolled_back_is_a_truncation(
        db: Database, history: dict, store: CheckpointDirectory, key: dict, unguarded: Any) -> None:
    _checkpoint(db, store, key)
    unguarded()
    _sql(db, "DELETE FROM events WHERE case_id = 4 AND seq = 7")
    _put_back(db, "cases", "id = 4", history["row4"])
    counts.repair(db.engine)  # the counts the report reads, made to agree as well
    assert verify(db).ok  # why checkpoints: the database agrees with itself
    audit = _against(db, store, key)
    assert audit.findings == [Finding(4, None, f"truncated: checkpoint #1 ({_at()}) saw 7 events; the database has 6")]
    assert str(audit.findings[0]).startswith("case 4: truncated: checkpoint #1")


def test_a_history_rewritten_with_recomputed_hashes_is_a_rewrite(
        db: Database, history: dict, store: CheckpointDirectory, key: dict, unguarded: Any) -> None:
    _checkpoint(db, store, key)
    unguarded()
    with db.unit_of_work() as uow:
        events = uow.events(3)
    prev = events[1].hash
    for event in events[2:]:  # the evidence's size (not in the case row), then every hash after it
        payload = dict(event.payload, size=99) if event.seq == 3 else dict(event.payload)
        body = canonical_json(payload) if event.seq == 3 else event.payload_json
        new = chain_hash(3, event.seq, event.type, event.actor, event.occurred_at, body, prev)
        _sql(db, "UPDATE events SET payload = :p, prev_hash = :prev, hash = :h WHERE case_id = 3 AND seq = :seq",
             p=body, prev=prev, h=new, seq=event.seq)
        prev = new
    _sql(db, "UPDATE cases SET last_hash = :h WHERE id = 3", h=prev)
    assert verify(db).ok  # every link and every hash holds, the row equals the replay
    [finding] = _against(db, store, key).findings
    assert (finding.case_id, finding.seq, finding.kind) == (3, 7, "case")
    assert finding.what == (f"rewritten: the stored events #1–#7 hash to {prev[:16]}…, checkpoint #1 ({_at()}) "
                            f"recorded {events[-1].hash[:16]}… (event #7 or one before it was changed)")


def test_the_head_is_recomputed_never_read(db: Database, history: dict, store: CheckpointDirectory, key: dict,
                                           unguarded: Any) -> None:
    """An event altered but left with the hash the checkpoint saw: the stored hash is not trusted."""
    _checkpoint(db, store, key)
    unguarded()
    _sql(db, "UPDATE events SET actor = 'coordinator:li' WHERE case_id = 3 AND seq = 7")
    [finding] = _against(db, store, key).findings
    assert (finding.case_id, finding.seq) == (3, 7) and finding.what.startswith("rewritten: ")
    assert [(f.case_id, f.seq) for f in verify(db).findings] == [(3, 7)]  # plain verify sees this one too


def _duty(db: Database, jurisdiction: str, at: datetime, *, missed: bool = False) -> None:
    with db.unit_of_work(core=True) as uow:
        stream = uow.duties.stream("shanxi-2021", jurisdiction)
        event = record_missed(stream, CITY_REPORT, actor="system:sweep", now=at, due_on=date(2021, 11, 30),
                              noticed_on=date(2021, 12, 1)) if missed else \
            record_done(stream, CITY_REPORT, actor="coordinator:wang", now=at, due_on=date(2021, 11, 30),
                        attachments=[{"sha256": "0" * 64, "filename": "年度创建情况.pdf", "size": 10, "type": "pdf"}])
        assert event is not None
        uow.duties.append(stream, event, apply_duty(stream, event), at)
        uow.commit()


def test_a_deleted_duty_event_is_a_truncation(db: Database, history: dict, store: CheckpointDirectory, key: dict,
                                              unguarded: Any) -> None:
    _duty(db, "shanxi-taiyuan", NOW, missed=True)
    where = "round_id = 'shanxi-2021' AND jurisdiction_id = 'shanxi-taiyuan'"
    before = _row(db, "duty_streams", where)
    _duty(db, "shanxi-taiyuan", NOW + timedelta(hours=1))
    checkpoint = _checkpoint(db, store, key, NOW + timedelta(hours=2))
    assert {k: v for k, v in checkpoint.counts.items() if not k.startswith("operator")} == {
        "cases": 35, "case_events": 47, "duty_streams": 1, "duty_events": 2}
    unguarded()
    _sql(db, f"DELETE FROM duty_events WHERE {where} AND seq = 2")
    _put_back(db, "duty_streams", where, before)
    assert verify(db).ok
    [finding] = _against(db, store, key).findings
    assert str(finding) == (f"duty stream shanxi-2021/shanxi-taiyuan: truncated: checkpoint #1 "
                            f"({_at(NOW + timedelta(hours=2))}) saw 2 events; the database has 1")


def test_a_whole_case_deleted_is_missing(db: Database, history: dict, store: CheckpointDirectory, key: dict,
                                         unguarded: Any) -> None:
    _checkpoint(db, store, key)
    unguarded()
    _sql(db, "DELETE FROM events WHERE case_id = 35")
    _sql(db, "DELETE FROM cases WHERE id = 35")
    counts.repair(db.engine)  # the counts the report reads, made to agree as well
    assert verify(db).ok
    assert [str(f) for f in _against(db, store, key).findings] == [
        f"case 35: missing: checkpoint #1 ({_at()}) saw 1 event; the database has none"]


def test_every_checkpoint_is_compared_not_only_the_latest(
        db: Database, history: dict, store: CheckpointDirectory, key: dict, unguarded: Any) -> None:
    """A rewrite made before the latest checkpoint was taken is anchored by the latest, but not
    by the one before it."""
    _checkpoint(db, store, key)
    unguarded()
    _sql(db, "DELETE FROM events WHERE case_id = 4 AND seq = 7")
    _put_back(db, "cases", "id = 4", history["row4"])
    _checkpoint(db, store, key, NOW + timedelta(hours=1))  # sees the truncated chain
    assert verify_checkpoints(db, store, key["verifier"], latest_only=True).ok
    assert [(f.case_id, f.what.split(":")[0]) for f in _against(db, store, key).findings] == [(4, "truncated")]


def test_the_latest_checkpoints_deleted_are_found_by_the_mailed_anchor(
        db: Database, history: dict, store: CheckpointDirectory, key: dict, unguarded: Any) -> None:
    """An insider truncates a chain and deletes the checkpoints that saw it: the folder alone
    agrees with the database again, but the anchor the digest mail carried (sequence and Merkle
    root) names what is gone; a checkpoint written again under that number has another root."""
    _checkpoint(db, store, key)
    second = _checkpoint(db, store, key, NOW + timedelta(hours=1))
    unguarded()
    _sql(db, "DELETE FROM events WHERE case_id = 4 AND seq = 7")
    _put_back(db, "cases", "id = 4", history["row4"])
    assert not _against(db, store, key).ok
    (store.directory / "checkpoint-00000002.json").unlink()
    (store.directory / "checkpoint-00000001.json").unlink()
    assert [f.what.split(" ")[0] for f in _against(db, store, key).findings] == ["holds"]  # nothing to compare
    found = verify_checkpoints(db, store, key["verifier"], anchor=(2, second.merkle_root)).findings
    assert any("the anchor names checkpoint #2, which is gone from the folder" in f.what for f in found)
    _checkpoint(db, store, key, NOW + timedelta(hours=2))  # #1 again, of the truncated chains
    _checkpoint(db, store, key, NOW + timedelta(hours=3))  # and #2
    assert verify_checkpoints(db, store, key["verifier"]).ok  # the rewritten folder agrees with itself
    found = verify_checkpoints(db, store, key["verifier"], anchor=(2, second.merkle_root)).findings
    assert len(found) == 1 and found[0].what.endswith(
        f"is not the anchor's {second.merkle_root[:16]}…: the checkpoint was replaced")


# ---------------------------------------------------------------- the checkpoints themselves
def test_a_checkpoint_missing_from_the_sequence_is_named(db: Database, history: dict, store: CheckpointDirectory,
                                                        key: dict) -> None:
    for hour in range(4):
        _checkpoint(db, store, key, NOW + timedelta(hours=hour))
    (store.directory / "checkpoint-00000002.json").unlink()
    (store.directory / "checkpoint-00000003.json").unlink()
    assert [str(f) for f in _against(db, store, key).findings] == [
        "checkpoint #2: missing from the sequence: #2–#3 (after #1; #4 is the next one kept)"]
    (store.directory / "checkpoint-00000001.json").unlink()
    assert [str(f) for f in _against(db, store, key).findings] == [
        "checkpoint #1: missing from the sequence: #1–#3 (at the start; #4 is the next one kept)"]


def test_no_checkpoint_at_all_is_named(db: Database, history: dict, store: CheckpointDirectory, key: dict) -> None:
    assert [str(f) for f in _against(db, store, key).findings] == [
        "checkpoint directory: holds no checkpoint to check against (none was written, or every one was deleted)"]


def test_a_tampered_checkpoint_has_a_bad_signature(db: Database, history: dict, store: CheckpointDirectory,
                                                  key: dict, unguarded: Any) -> None:
    _checkpoint(db, store, key)
    _checkpoint(db, store, key, NOW + timedelta(hours=1))
    unguarded()
    _sql(db, "DELETE FROM events WHERE case_id = 4 AND seq = 7")
    _put_back(db, "cases", "id = 4", history["row4"])
    for number in (1, 2):  # the insider makes the checkpoints agree with the truncated chain
        path = store.directory / f"checkpoint-{number:08d}.json"
        document = json.loads(path.read_bytes())
        document["checkpoint"]["chains"][3][2] = 6
        path.write_bytes(canonical(document))
    audit = _against(db, store, key)
    assert [str(f) for f in audit.findings] == [
        f"checkpoint #{n}: bad signature: checkpoint-0000000{n}.json was altered after it was signed, or signed "
        "with another key" for n in (1, 2)]
    (store.directory / "checkpoint-00000002.json").write_bytes(b"{not json")
    assert str(_against(db, store, key).findings[1]).startswith(
        "checkpoint #2: checkpoint-00000002.json cannot be read: it is not JSON")


def test_the_public_key_alone_verifies(db: Database, history: dict, store: CheckpointDirectory, key: dict,
                                       tmp_path: Path) -> None:
    _checkpoint(db, store, key)
    auditor = tmp_path / "auditor.pub.pem"
    auditor.write_bytes(key["public"].read_bytes())
    key["private"].unlink()
    audit = verify_checkpoints(db, store, Ed25519Verifier.from_file(auditor))
    assert (audit.ok, audit.checked, audit.chains) == (True, 1, 35 + 3)  # and the 3 operator streams
    assert audit.latest is not None and audit.latest.sequence == 1


def test_a_wrong_public_key_fails_every_signature(db: Database, history: dict, store: CheckpointDirectory,
                                                  key: dict, tmp_path: Path) -> None:
    _checkpoint(db, store, key)
    _, other = generate_key(tmp_path / "other.pem")
    [finding] = verify_checkpoints(db, store, other).findings
    assert str(finding) == (
        "checkpoint #1: bad signature: checkpoint-00000001.json was altered after it was signed, or signed with "
        f"another key (it names key {key['verifier'].key_id()[:16]}…, the key given is {other.key_id()[:16]}…)")


def test_keys_are_never_overwritten_and_kept_private(key: dict) -> None:
    assert stat.S_IMODE(key["private"].stat().st_mode) == 0o600
    assert key["public"].name == "checkpoint-ed25519.pub.pem"
    before = key["private"].read_bytes()
    with pytest.raises(AlreadyExists, match="never overwritten"):
        generate_key(key["private"])
    assert key["private"].read_bytes() == before
    with pytest.raises(ConfigError, match="does not exist: run `workflow audit keygen`"):
        Ed25519Signer.from_file(key["private"].with_name("nowhere.pem"))


def test_a_checkpoint_is_never_replaced(store: CheckpointDirectory) -> None:
    store.add(1, b"first\n")
    with pytest.raises(AlreadyExists, match="written meanwhile"):
        store.add(1, b"second\n")
    assert store.read(1) == b"first\n" and store.sequences() == [1]
    assert [p.name for p in store.directory.iterdir()] == ["checkpoint-00000001.json"]  # no temporary left


# ---------------------------------------------------------------- plain verify: positions and filings
def test_a_gap_in_a_cases_positions_is_named(db: Database, history: dict, unguarded: Any) -> None:
    unguarded()
    _sql(db, "DELETE FROM events WHERE case_id = 3 AND seq = 1")
    _sql(db, "DELETE FROM events WHERE case_id = 4 AND seq IN (2, 3)")
    assert [str(f) for f in verify(db).findings] == [
        "case 3 event #2: event #1 is missing: the chain starts at #2",
        "case 4 event #4: events #2–#3 are missing: #1 is followed by #4"]


def _filed(db: Database) -> str:
    """Cases 3 and 4 certified and filed in one batch."""
    open_shanxi(db, NOW)
    for case_id in (3, 4):
        _prepare(db, case_id)
        _verified(db, case_id, "90")
        perform_action(db, case_id, "certify", {}, COORDINATOR, NOW)
    return file_round(db, "shanxi-2021", "shanxi", actor=COORDINATOR, now=NOW + timedelta(hours=1)).id


def _batch_cases(db: Database, batch_id: str, cases: list[dict[str, Any]]) -> None:
    with db.engine.begin() as conn:
        conn.execute(update(filing_batches).where(filing_batches.c.id == batch_id).values(cases=cases))


def test_filing_batches_agree_with_the_filed_events(db: Database) -> None:
    batch = _filed(db)
    assert batch == "shanxi-2021-filing-1"
    assert verify(db).ok
    listed = db.oversight.filing(batch)
    assert listed is not None
    _batch_cases(db, batch, [*listed.cases, {**listed.cases[0], "case_id": 5}])
    assert [str(f) for f in verify(db).findings] == [
        "case 5: filing batch shanxi-2021-filing-1 lists this case, but no CaseFiled event of the case names that "
        "batch"]
    _batch_cases(db, batch, [c for c in listed.cases if c["case_id"] != 3])
    assert [str(f) for f in verify(db).findings] == [
        "case 3 event #9: CaseFiled names filing batch shanxi-2021-filing-1, which does not list this case"]
    _batch_cases(db, batch, [*listed.cases, {**listed.cases[0], "case_id": 999}])
    assert [str(f) for f in verify(db).findings] == [
        "filing batch shanxi-2021-filing-1: lists case 999, which does not exist"]
    _sql(db, "DELETE FROM filing_batches")
    assert [str(f) for f in verify(db).findings] == [
        f"case {n} event #9: CaseFiled names filing batch shanxi-2021-filing-1, which does not exist" for n in (3, 4)]


def test_a_case_filed_by_hand_with_an_outside_reference_is_no_finding(db: Database) -> None:
    """Before filing went only through batches, a case could be filed by hand naming the national
    bureau's own reference: such a history stays valid."""
    from workflow.service.cases import take

    open_shanxi(db, NOW)
    _prepare(db, 3)
    _verified(db, 3, "90")
    perform_action(db, 3, "certify", {}, COORDINATOR, NOW)
    with db.unit_of_work() as uow:
        take(uow, uow.get(3), "file", {"batch": "2021-国管局备案"}, COORDINATOR, NOW)
        uow.commit()
    assert verify(db).ok


# ---------------------------------------------------------------- the scheduled job
def _application(db: Database, db_url: str, tmp_path: Path, clock: ManualClock) -> App:
    settings = Settings(database_url=db_url, checkpoint_dir=tmp_path / "checkpoints",
                        checkpoint_key=tmp_path / "keys" / "checkpoint-ed25519.pem", evidence_dir=tmp_path / "ev",
                        maildir=tmp_path / "mail")
    return App(settings=settings, engine=db.engine, db=db, clock=clock,
               calendars=CalendarCatalog(REPO_ROOT / "calendars"))


def test_the_scheduled_job_writes_a_checkpoint_when_a_chain_moved(db: Database, db_url: str, tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    open_shanxi(db, NOW)
    clock = ManualClock(NOW)
    application = _application(db, db_url, tmp_path, clock)
    job = application.checkpoint_job()
    with capture_logs() as logs:
        assert job() is None and job() is None  # no key: warned once, skipped, serve goes on
    assert [e["event"] for e in logs] == ["no checkpoint key: signed checkpoints of the audit chain are not written"]
    generate_key(application.settings.checkpoint_key)
    clock.advance(timedelta(hours=1))
    done = job()
    assert (done.written, done.checkpoint.sequence, done.checkpoint.created_at) == (True, 1, NOW + timedelta(hours=1))
    assert (application.settings.checkpoint_dir / "checkpoint-00000001.json").is_file()
    clock.advance(timedelta(hours=1))
    assert job().written is False  # nothing moved: nothing written
    perform_action(db, 1, "self_assess", {"entries": {"1.1.1": "9"}}, unit_actor(1), clock.now())
    clock.advance(timedelta(hours=1))
    again = job()
    assert (again.written, again.checkpoint.sequence, again.checkpoint.counts["case_events"]) == (True, 2, 36)
    assert verify_checkpoints(db, application.checkpoint_store(), application.checkpoint_verifier()).ok
    scheduler = build_scheduler(lambda: None, lambda: None, sweep_minutes=60, dispatch_seconds=30, checkpoint=job,
                                checkpoint_minutes=application.settings.checkpoint_interval_minutes)
    assert scheduler.get_job("checkpoint").trigger.interval == timedelta(minutes=60)


def test_the_coordinators_digest_quotes_the_latest_checkpoint(db: Database, db_url: str, tmp_path: Path) -> None:
    """A copy of the anchor lands outside the database: in the coordinators' mailboxes."""
    import asyncio

    from notifications.testing import InMemoryTransport
    from workflow.service.deadlines import sweep
    from workflow.service.directory import add_coordinator
    from workflow.service.dispatch import dispatch

    open_shanxi(db, datetime(2021, 5, 26, tzinfo=UTC))
    add_coordinator(db, "shanxi", "王协调", "wang@jgswj.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    clock = ManualClock(datetime(2021, 10, 21, 1, tzinfo=UTC))
    application = _application(db, db_url, tmp_path, clock)
    assert application.dispatch_settings().anchor() is None  # none yet: the digest says nothing of it
    generate_key(application.settings.checkpoint_key)
    done = application.checkpoint_job()()
    sweep(db, CALENDARS, clock.now())
    transport = InMemoryTransport()
    asyncio.run(dispatch(db, CALENDARS, transport, clock.now(), application.dispatch_settings()))
    mails = transport.to("wang@jgswj.example.cn")
    digests = [m for m in mails if m.subject.startswith("【汇总】")]  # the self-assessments and contact forms overdue
    assert len(digests) == 2
    line = f"审计锚点：第1号检查点（2021-10-21 09:00:00，北京时间），Merkle根 {done.checkpoint.merkle_root}。"
    assert all(line in m.text and done.checkpoint.merkle_root in m.html for m in digests)
    # and the day's anchor on its own, once a day, with the command that checks it
    anchors = [m for m in mails if m.subject.startswith("【审计锚点】")]
    assert len(anchors) == 1 and f"--anchor 1:{done.checkpoint.merkle_root}" in anchors[0].text
    assert "2021年10月21日" in anchors[0].subject
    application.checkpoint_job()()  # later the same day: nothing moved, no second anchor mail
    asyncio.run(dispatch(db, CALENDARS, transport, clock.now(), application.dispatch_settings()))
    assert len([m for m in transport.to("wang@jgswj.example.cn") if m.subject.startswith("【审计锚点】")]) == 1
    clock.advance(timedelta(days=1))
    application.checkpoint_job()()
    asyncio.run(dispatch(db, CALENDARS, transport, clock.now(), application.dispatch_settings()))
    assert len([m for m in transport.to("wang@jgswj.example.cn") if m.subject.startswith("【审计锚点】")]) == 2


# ---------------------------------------------------------------- the commands
@pytest.fixture
def cli(db: Database, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from workflow.cli import app

    monkeypatch.setenv("WORKFLOW_DATABASE_URL", db_url)
    monkeypatch.setenv("WORKFLOW_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("WORKFLOW_CHECKPOINT_KEY", str(tmp_path / "keys" / "checkpoint-ed25519.pem"))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_the_commands(db: Database, history: dict, cli: Any, tmp_path: Path, unguarded: Any) -> None:
    private = tmp_path / "keys" / "checkpoint-ed25519.pem"
    r = cli("audit", "checkpoint")
    assert isinstance(r.exception, ConfigError) and "run `workflow audit keygen`" in r.exception.message
    r = cli("audit", "keygen")
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and "-----BEGIN PUBLIC KEY-----" in r.stdout
    assert isinstance(cli("audit", "keygen").exception, AlreadyExists)
    r = cli("audit", "checkpoint")
    assert r.exit_code == 0, r.output
    root = json.loads((tmp_path / "checkpoints" / "checkpoint-00000001.json").read_bytes())["checkpoint"]["merkle_root"]
    assert f"checkpoint #1 written to {tmp_path / 'checkpoints' / 'checkpoint-00000001.json'}: 35 cases (47 events)" \
        in r.stdout and f"merkle root {root}" in r.stdout
    r = cli("audit", "verify", "--checkpoints")
    assert r.exit_code == 0, r.output
    assert "audit ok: 35 cases, 47 events" in r.stdout and "checkpoints ok: 1 checked" in r.stdout
    public = tmp_path / "auditor.pub.pem"
    private.with_name("checkpoint-ed25519.pub.pem").rename(public)
    private.rename(tmp_path / "elsewhere.pem")  # the auditor has the public key only
    assert "checkpoints ok: 1 checked" in cli("audit", "verify", "--public-key", str(public)).stdout
    assert isinstance(cli("audit", "verify", "--checkpoints").exception, ConfigError)
    unguarded()
    _sql(db, "DELETE FROM events WHERE case_id = 4 AND seq = 7")
    _put_back(db, "cases", "id = 4", history["row4"])
    assert cli("audit", "verify").exit_code == 1  # the progress counts still count the removed event's move
    assert cli("db", "recount").exit_code == 1
    r = cli("db", "recount", "--repair")
    assert r.exit_code == 0 and "progress counts rewritten from the rows" in r.stdout, r.output
    assert cli("audit", "verify").exit_code == 0  # counts made to agree: plain verify cannot see it
    r = cli("audit", "verify", "--public-key", str(public))
    assert r.exit_code == 1
    assert "audit FAILED: 1 problem(s) in 35 cases, 46 events; first: case 4: truncated: checkpoint #1" in r.stderr


# ---------------------------------------------------------------- the API
@pytest.fixture
def keyed(client: Any, tmp_path: Path) -> Any:
    settings = client.app.state.application.settings
    settings.checkpoint_dir = tmp_path / "api-checkpoints"
    settings.checkpoint_key = tmp_path / "api-keys" / "checkpoint-ed25519.pem"
    return settings


def test_the_api_writes_and_reads_checkpoints_by_role(client: Any, keyed: Any) -> None:
    admin, auditor = client.token("admin"), client.token("auditor", jurisdiction_id="shanxi-taiyuan")
    coordinator, unit = client.token("coordinator", jurisdiction_id="shanxi-taiyuan"), client.token("unit", unit_id=1)
    r = client.post("/api/v1/audit/checkpoints", headers=admin)
    assert r.status_code == 500 and r.json()["error"]["code"] == "config"
    assert str(keyed.checkpoint_key) not in r.text  # no server path in an answer
    assert client.get("/api/v1/audit/checkpoints/latest", headers=auditor).status_code == 404
    generate_key(keyed.checkpoint_key)
    for who in (auditor, coordinator, unit):
        assert client.post("/api/v1/audit/checkpoints", headers=who).status_code == 403
    r = client.post("/api/v1/audit/checkpoints", headers=admin)
    assert r.status_code == 201, r.text
    written = r.json()
    assert (written["sequence"], written["file"], written["signature_ok"], written["scope"]) == (
        1, "checkpoint-00000001.json", True, "/")
    cases = [c for c in written["chains"] if c["kind"] == "case"]
    operator = [c for c in written["chains"] if c["kind"] == "operator"]
    assert len(cases) == 36 and written["counts"]["cases"] == 36
    assert len(operator) == written["counts"]["operator_streams"] == len(written["chains"]) - 36
    assert client.get("/api/v1/audit/checkpoints/latest", headers=unit).status_code == 403
    for who in (auditor, coordinator):
        r = client.get("/api/v1/audit/checkpoints/latest", headers=who)
        assert r.status_code == 200, r.text
        seen = r.json()
        assert (seen["sequence"], seen["merkle_root"], seen["scope"]) == (
            1, written["merkle_root"], "/shanxi/shanxi-taiyuan/")
        assert [(c["kind"], c["key"]) for c in seen["chains"]] == [("case", "36")]  # its scope's chains only
    r = client.get("/api/v1/audit/verify", headers=admin)
    assert r.json()["ok"] is True
    assert r.json()["checkpoint"] == {"sequence": 1, "created_at": written["created_at"],
                                      "merkle_root": written["merkle_root"], "ok": True, "findings": []}


def test_the_api_verify_reports_the_latest_checkpoint(client: Any, keyed: Any) -> None:
    admin, auditor = client.token("admin"), client.token("auditor", jurisdiction_id="shanxi-taiyuan")
    assert client.get("/api/v1/audit/verify", headers=admin).json()["checkpoint"] is None  # none kept
    generate_key(keyed.checkpoint_key)
    assert client.post("/api/v1/audit/checkpoints", headers=admin).status_code == 201
    path = keyed.checkpoint_dir / "checkpoint-00000001.json"
    document = json.loads(path.read_bytes())
    document["checkpoint"]["chains"][0][2] = 2
    path.write_bytes(canonical(document))
    for who, scope in ((admin, "/"), (auditor, "/shanxi/shanxi-taiyuan/")):
        body = client.get("/api/v1/audit/verify", headers=who).json()
        assert (body["ok"], body["scope"], body["checkpoint"]["ok"]) == (False, scope, False)
        assert [f["what"] for f in body["checkpoint"]["findings"]] == [
            "checkpoint #1: bad signature: checkpoint-00000001.json was altered after it was signed, or signed with "
            "another key"]
    assert client.get("/api/v1/audit/checkpoints/latest", headers=admin).json()["signature_ok"] is False
    keyed.checkpoint_key.write_text("not a key")  # the server's key damaged: the audit still answers
    keyed.checkpoint_key.with_name("checkpoint-ed25519.pub.pem").unlink()
    body = client.get("/api/v1/audit/verify", headers=admin).json()
    assert body["checkpoint"]["findings"] == [{"case_id": None, "stream": None, "seq": None, "what": (
        "checkpoint directory: cannot be checked: the server has no usable checkpoint key")}]
    r = client.post("/api/v1/audit/checkpoints", headers=admin)
    assert r.status_code == 500 and str(keyed.checkpoint_key) not in r.text

"""Checkpoints: the head of every hash chain, signed with a key kept outside the database.

``audit verify`` checks that the stored history agrees with itself. Someone who can write the
database can still make it agree with itself after deleting a case's last events (and rolling
the case row back to match) or after rewriting a history and recomputing every hash after the
change. A checkpoint anchors the chains outside the database: the last sequence number and hash
of every chain (every case's events, every duty stream), a Merkle root over them, the time, and
the previous checkpoint's digest, signed with an Ed25519 key the database never sees. An auditor
holding only the public key checks that each checkpoint is intact and in sequence, and that
every chain still holds what each checkpoint saw (recomputed from the stored events).

The format (``workflow-checkpoint/1``), one JSON file per checkpoint::

    {"checkpoint": BODY, "signature": "<base64 of the Ed25519 signature of canonical(BODY)>"}

BODY, an object:

- ``format``: ``"workflow-checkpoint/1"``
- ``sequence``: 1, 2, 3, ... (one more than the previous checkpoint's)
- ``previous``: the previous checkpoint's digest, or null for #1. A checkpoint's digest is the
  SHA-256 (hex) of canonical(its BODY)
- ``created_at``: the time, ISO 8601 in UTC with microseconds (``2021-10-12T02:00:00.000000+00:00``)
- ``key_id``: the SHA-256 (hex) of the raw 32-byte Ed25519 public key that signed it
- ``counts``: ``{"cases", "case_events", "duty_streams", "duty_events", "operator_streams",
  "operator_events"}`` (events counted as the sum of the heads' sequence numbers; checkpoints
  written before the operator log have only the first four)
- ``chains``: the head of every chain, each ``[kind, key, seq, hash]``: kind ``"case"`` (key: the
  case id in decimal) in case id order, then kind ``"duties"`` (key: ``"round/jurisdiction"``) in
  key order (Unicode code points), then kind ``"operator"`` (key: ``"operator/<stream>"``) in key
  order; ``seq`` the last event's sequence number, ``hash`` its hash
- ``merkle_root``: the Merkle tree hash (hex) of ``chains``

canonical(x): JSON with the keys of every object sorted, no whitespace (separators ``,`` and
``:``), non-ASCII characters as themselves, encoded in UTF-8.

The Merkle tree is RFC 6962's (section 2.1): the hash of leaf i is SHA-256(0x00 ||
canonical(chains[i])); a node's is SHA-256(0x01 || left || right) over the raw 32-byte hashes; a
list of n > 1 leaves splits after its first k, the largest power of two below n. The root of no
chain at all is SHA-256 of nothing.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from ..domain.dates import BUSINESS_TZ, require_aware
from ..domain.duties import stream_key
from ..domain.errors import DomainError, zh_of
from ..domain.events import GENESIS_HASH, Chained, chain_hash, utc_iso
from .audit import Finding
from .ports import ChainHead, CheckpointSigner, CheckpointStore, CheckpointVerifier, EventSource, OutboxEntry, Storage

FORMAT = "workflow-checkpoint/1"
KINDS = ("case", "duties", "operator")
_FIELDS = frozenset({"format", "sequence", "previous", "created_at", "key_id", "counts", "chains", "merkle_root"})
_COUNTS = ("cases", "case_events", "duty_streams", "duty_events")
_OPERATOR_COUNTS = ("operator_streams", "operator_events")  # absent from checkpoints made before the operator log


class CheckpointDamaged(DomainError):
    """A checkpoint file that cannot be read (the server's problem: an operator restores it)."""

    code = "corrupt_blob"


class Unreadable(ValueError):
    """A checkpoint file that is not a checkpoint (why, in a few words; ``zh``: the same in Chinese)."""

    def __init__(self, message: str, zh: str) -> None:
        super().__init__(message)
        self.zh = zh


def canonical(value: Any) -> bytes:
    """The bytes a checkpoint's signature and digest cover (see the module's docstring)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def leaf(head: ChainHead) -> list[Any]:
    return [head.kind, head.key, head.seq, head.hash]


def chain_order(head: ChainHead) -> tuple[int, int, str]:
    """Cases by id (as a number), then duty streams by key, then operator streams by key."""
    return (0, int(head.key), "") if head.kind == "case" else (1 if head.kind == "duties" else 2, 0, head.key)


def merkle_root(heads: Sequence[ChainHead]) -> str:
    """The RFC 6962 Merkle tree hash of the heads, in the order given (hex)."""
    if not heads:
        return hashlib.sha256(b"").hexdigest()
    return _tree([hashlib.sha256(b"\x00" + canonical(leaf(h))).digest() for h in heads]).hex()


def _tree(nodes: list[bytes]) -> bytes:
    if len(nodes) == 1:
        return nodes[0]
    k = 1 << ((len(nodes) - 1).bit_length() - 1)  # the largest power of two below len(nodes)
    return hashlib.sha256(b"\x01" + _tree(nodes[:k]) + _tree(nodes[k:])).digest()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    sequence: int
    created_at: datetime
    previous: str | None
    key_id: str
    counts: Mapping[str, int]
    chains: tuple[ChainHead, ...]
    merkle_root: str

    def body(self) -> dict[str, Any]:
        return {"format": FORMAT, "sequence": self.sequence, "previous": self.previous,
                "created_at": utc_iso(self.created_at), "key_id": self.key_id, "counts": dict(self.counts),
                "chains": [leaf(h) for h in self.chains], "merkle_root": self.merkle_root}

    def signed_bytes(self) -> bytes:
        return canonical(self.body())

    def digest(self) -> str:
        return hashlib.sha256(self.signed_bytes()).hexdigest()


def new_checkpoint(heads: Iterable[ChainHead], now: datetime, previous: Checkpoint | None, key_id: str) -> Checkpoint:
    """The checkpoint that follows ``previous`` (None: the first), of these chain heads."""
    chains = tuple(sorted(heads, key=chain_order))
    cases = [h for h in chains if h.kind == "case"]
    streams = [h for h in chains if h.kind == "duties"]
    operator = [h for h in chains if h.kind == "operator"]
    counts = {"cases": len(cases), "case_events": sum(h.seq for h in cases), "duty_streams": len(streams),
              "duty_events": sum(h.seq for h in streams), "operator_streams": len(operator),
              "operator_events": sum(h.seq for h in operator)}
    return Checkpoint(1 if previous is None else previous.sequence + 1,
                      require_aware(now, "now").astimezone(UTC), None if previous is None else previous.digest(),
                      key_id, counts, chains, merkle_root(chains))


def encode(checkpoint: Checkpoint, signature: bytes) -> bytes:
    """The checkpoint's file: its body and signature, canonical JSON and a newline."""
    return canonical({"checkpoint": checkpoint.body(),
                      "signature": base64.b64encode(signature).decode("ascii")}) + b"\n"


def parse(data: bytes) -> tuple[Any, bytes]:
    """(the body as parsed, the signature) of a checkpoint file; Unreadable if it is not one."""
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise Unreadable("it is not UTF-8 text", "不是 UTF-8 文本") from None
    except ValueError as exc:
        raise Unreadable(f"it is not JSON ({getattr(exc, 'msg', exc)})",
                         f"不是 JSON（{getattr(exc, 'msg', exc)}）") from None
    if not isinstance(document, dict) or set(document) != {"checkpoint", "signature"} \
            or not isinstance(document["signature"], str):
        raise Unreadable('it is not {"checkpoint": ..., "signature": ...}',
                         '不是 {"checkpoint": ..., "signature": ...} 的格式')
    try:
        signature = base64.b64decode(document["signature"], validate=True)
    except binascii.Error:
        raise Unreadable("its signature is not base64", "签名不是 base64 编码") from None
    return document["checkpoint"], signature


def checkpoint_from(body: Any) -> Checkpoint:
    """The checkpoint a (signed) body describes; Unreadable when a field is missing or malformed."""
    if not isinstance(body, dict) or set(body) != _FIELDS or body["format"] != FORMAT:
        raise Unreadable(f"it is not a {FORMAT} body", f"不是 {FORMAT} 格式的检查点内容")
    try:
        chains = tuple(_head(item) for item in body["chains"])
        counts = {name: body["counts"][name] for name in _COUNTS}
        counts.update({name: body["counts"][name] for name in _OPERATOR_COUNTS if name in body["counts"]})
        created = datetime.fromisoformat(body["created_at"])
        checkpoint = Checkpoint(body["sequence"], created, body["previous"], body["key_id"], counts, chains,
                                body["merkle_root"])
        same = checkpoint.body() == body
    except (KeyError, TypeError, ValueError):
        same = False
    if not same:
        raise Unreadable("a field is missing or malformed", "有字段缺失或格式有误")
    if list(chains) != sorted(chains, key=chain_order) or len({(h.kind, h.key) for h in chains}) != len(chains):
        raise Unreadable("its chains are not in order, or one is listed twice", "所列链条顺序有误，或有重复")
    return checkpoint


def _head(item: Any) -> ChainHead:
    kind, key, seq, hash_ = item
    if kind not in KINDS or not isinstance(key, str) or type(seq) is not int or seq < 1 or not isinstance(hash_, str):
        raise ValueError("bad chain head")
    if kind == "case" and str(int(key)) != key:
        raise ValueError("bad case id")
    return ChainHead(kind, key, seq, hash_)


# ---------------------------------------------------------------- writing

@dataclass(frozen=True, slots=True)
class Written:
    checkpoint: Checkpoint
    name: str
    written: bool  # False: nothing changed since the latest checkpoint, and none was asked for then


def _damaged(store: CheckpointStore, sequence: int, why: Exception) -> CheckpointDamaged:
    return CheckpointDamaged(f"checkpoint #{sequence} ({store.name(sequence)}) cannot be read: {why}; run "
                             "`workflow audit verify --checkpoints`",
                             f"第 {sequence} 号检查点文件（{store.name(sequence)}）无法读取："
                             f"{zh_of(why) or f'读取出错（{why}）'}；请运行 workflow audit verify --checkpoints 检查")


def _stored(store: CheckpointStore, sequence: int) -> Checkpoint:
    """A stored checkpoint as it reads (its signature is not checked here)."""
    try:
        body, _ = parse(store.read(sequence))
        return checkpoint_from(body)
    except (OSError, Unreadable) as exc:
        raise _damaged(store, sequence, exc) from None


def write_checkpoint(source: EventSource, store: CheckpointStore, signer: CheckpointSigner, now: datetime, *,
                     skip_unchanged: bool = False) -> Written:
    """Sign and keep the checkpoint of every chain's head now, following the latest one kept.
    ``skip_unchanged``: write nothing when no chain moved since the latest (its Merkle root is
    the same) and answer with that one."""
    sequences = store.sequences()
    previous = _stored(store, sequences[-1]) if sequences else None
    checkpoint = new_checkpoint(source.chain_heads(), now, previous, signer.key_id())
    if skip_unchanged and previous is not None and previous.merkle_root == checkpoint.merkle_root \
            and previous.key_id == checkpoint.key_id:
        return Written(previous, store.name(previous.sequence), False)
    name = store.add(checkpoint.sequence, encode(checkpoint, signer.sign(checkpoint.signed_bytes())))
    return Written(checkpoint, name, True)


@dataclass(frozen=True, slots=True)
class Opened:
    checkpoint: Checkpoint
    name: str
    signature_ok: bool | None  # None: no key to check it with


def latest_checkpoint(store: CheckpointStore, verifier: CheckpointVerifier | None) -> Opened | None:
    """The latest checkpoint kept (None: none yet), and whether its signature holds."""
    sequences = store.sequences()
    if not sequences:
        return None
    number = sequences[-1]
    try:
        body, signature = parse(store.read(number))
        checkpoint = checkpoint_from(body)
    except (OSError, Unreadable) as exc:
        raise _damaged(store, number, exc) from None
    ok = None if verifier is None else verifier.verify(canonical(body), signature)
    return Opened(checkpoint, store.name(number), ok)


def anchor(store: CheckpointStore) -> dict[str, Any] | None:
    """The latest checkpoint as the coordinators' digests quote it (a copy of the anchor in
    their mailboxes, outside the database): sequence, time (Beijing) and Merkle root; None when
    there is none, or it cannot be read (a digest is never held up by a checkpoint)."""
    try:
        sequences = store.sequences()
        latest = _stored(store, sequences[-1]) if sequences else None
    except (OSError, DomainError):
        return None
    if latest is None:
        return None
    return {"sequence": latest.sequence, "merkle_root": latest.merkle_root,
            "created_at": latest.created_at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S")}


# ---------------------------------------------------------------- checking the chains against them

class _Seen(NamedTuple):
    """A head a checkpoint saw: the hash, and which checkpoint (the first to see it)."""

    hash: str
    sequence: int
    at: str


# chain (kind, key) → sequence number → the hashes checkpoints recorded there
Expected = dict[tuple[str, str], dict[int, list[_Seen]]]


@dataclass
class CheckpointAudit:
    checked: int = 0  # checkpoint files read
    latest: Checkpoint | None = None  # the latest checkpoint whose signature holds
    chains: int = 0  # chains compared with what a checkpoint saw
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def verify_checkpoints(source: EventSource, store: CheckpointStore, verifier: CheckpointVerifier, *,
                       scoped: bool = False, latest_only: bool = False,
                       anchor: tuple[int, str] | None = None) -> CheckpointAudit:
    """Check every checkpoint kept (``latest_only``: the latest) — its signature, its place in
    the sequence — and that every chain still holds what each checkpoint saw, recomputing the
    hashes from the stored events. ``scoped``: ``source`` is one subtree, so a chain gone from it
    entirely is not reported (it may be another subtree's). ``anchor``: a checkpoint's sequence
    number and Merkle root as kept outside the server (the coordinators' digest mail): the
    folder must still hold that checkpoint, with that root — deleting the latest checkpoints to
    hide a truncation after them is found this way."""
    audit = CheckpointAudit()
    sequences = store.sequences()
    if anchor is not None:
        _check_anchor(store, verifier, sequences, anchor, audit)
    if not sequences:
        audit.findings.append(Finding("directory", None, "holds no checkpoint to check against (none was written, "
                                      "or every one was deleted)", "checkpoint"))
        return audit
    expected: Expected = {}
    _read_all(store, verifier, sequences[-1:] if latest_only else sequences, audit, expected,
              from_start=not latest_only)
    _compare(source, expected, audit, scoped)
    return audit


def _check_anchor(store: CheckpointStore, verifier: CheckpointVerifier, sequences: list[int],
                  anchor: tuple[int, str], audit: CheckpointAudit) -> None:
    number, root = anchor
    if number not in sequences:
        kept = f"the latest kept is #{sequences[-1]}" if sequences else "none is kept"
        audit.findings.append(Finding(f"#{number}", None, f"the anchor names checkpoint #{number}, which is gone from "
                                      f"the folder ({kept}): checkpoints were deleted", "checkpoint"))
        return
    checkpoint = _open(store, verifier, number, CheckpointAudit())
    if checkpoint is not None and checkpoint.merkle_root != root.lower():
        audit.findings.append(Finding(f"#{number}", None, f"its Merkle root {checkpoint.merkle_root[:16]}… is not "
                                      f"the anchor's {root[:16]}…: the checkpoint was replaced", "checkpoint"))


def _read_all(store: CheckpointStore, verifier: CheckpointVerifier, sequences: list[int], audit: CheckpointAudit,
              expected: Expected, *, from_start: bool) -> None:
    before = 0 if from_start else None  # the number the next one should follow
    previous: str | None = None  # the digest of checkpoint #before, when it was read and is intact
    for number in sequences:
        if before is not None and number != before + 1:
            missing = f"#{before + 1}" if number == before + 2 else f"#{before + 1}–#{number - 1}"
            where = f"after #{before}" if before else "at the start"
            audit.findings.append(Finding(f"#{before + 1}", None, f"missing from the sequence: {missing} "
                                          f"({where}; #{number} is the next one kept)", "checkpoint"))
            previous = None
        checkpoint = _open(store, verifier, number, audit)
        audit.checked += 1
        if checkpoint is not None:
            if (number == 1 and checkpoint.previous is not None) or \
                    (previous is not None and before == number - 1 and checkpoint.previous != previous):
                audit.findings.append(Finding(f"#{number}", None, "does not follow the checkpoint before it (its "
                                              "previous digest differs)", "checkpoint"))
            _expect(expected, checkpoint)
            audit.latest = checkpoint
        before = number
        previous = None if checkpoint is None else checkpoint.digest()


def _open(store: CheckpointStore, verifier: CheckpointVerifier, number: int, audit: CheckpointAudit
          ) -> Checkpoint | None:
    """Checkpoint #number if it reads and its signature holds (else a finding, and None)."""
    name = store.name(number)

    def bad(what: str) -> None:
        audit.findings.append(Finding(f"#{number}", None, what, "checkpoint"))

    try:
        body, signature = parse(store.read(number))
    except (OSError, Unreadable) as exc:
        bad(f"{name} cannot be read: {exc}")
        return None
    if not verifier.verify(canonical(body), signature):
        named = body.get("key_id") if isinstance(body, dict) else None
        other = f" (it names key {str(named)[:16]}…, the key given is {verifier.key_id()[:16]}…)" \
            if named != verifier.key_id() else ""
        bad(f"bad signature: {name} was altered after it was signed, or signed with another key{other}")
        return None
    try:
        checkpoint = checkpoint_from(body)
    except Unreadable as exc:
        bad(f"{name} is signed but malformed: {exc}")
        return None
    if checkpoint.sequence != number:
        bad(f"{name} says it is checkpoint #{checkpoint.sequence}")
        return None
    if merkle_root(checkpoint.chains) != checkpoint.merkle_root:
        bad(f"{name}: its Merkle root does not match the chains it lists")
        return None
    return checkpoint


def _expect(expected: Expected, checkpoint: Checkpoint) -> None:
    at = utc_iso(checkpoint.created_at)
    for head in checkpoint.chains:
        seen = expected.setdefault((head.kind, head.key), {}).setdefault(head.seq, [])
        if all(s.hash != head.hash for s in seen):
            seen.append(_Seen(head.hash, checkpoint.sequence, at))


def _chains(source: EventSource) -> Iterator[tuple[tuple[str, str], list[Chained]]]:
    """Every stored chain's events, chain by chain (cases, then duty streams)."""
    key: tuple[str, str] | None = None
    events: list[Chained] = []
    for event in itertools.chain(_stream(source.all_events(), "case"), _stream(source.all_duty_events(), "duties"),
                                 _stream(source.all_operator_events(), "operator")):
        if event[0] != key:
            if key is not None:
                yield key, events
            key, events = event[0], []
        events.append(event[1])
    if key is not None:
        yield key, events


def _stream(events: Iterable[Chained], kind: str) -> Iterator[tuple[tuple[str, str], Chained]]:
    for event in events:
        yield (kind, str(event.stream())), event


def _compare(source: EventSource, expected: Expected, audit: CheckpointAudit, scoped: bool) -> None:
    stored: set[tuple[str, str]] = set()
    for key, events in _chains(source):
        stored.add(key)
        wanted = expected.get(key)
        if wanted:
            audit.chains += 1
            finding = _compare_chain(key, events, wanted)
            if finding is not None:
                audit.findings.append(finding)
    gone = sorted(expected.keys() - stored, key=lambda k: chain_order(ChainHead(k[0], k[1], 1, "")))
    if scoped and gone:
        known = {("case", str(c.id)) for c in source.all_cases()} | {
            ("duties", stream_key(s.round_id, s.jurisdiction_id)) for s in source.all_duty_streams()}
        gone = [k for k in gone if k in known]
    for key in gone:
        audit.chains += 1
        last = max(expected[key])
        seen = expected[key][last][0]
        audit.findings.append(_finding(key, None, f"missing: checkpoint #{seen.sequence} ({seen.at}) saw "
                                                  f"{_events(last)}; the database has none"))


def _events(count: int) -> str:
    return "1 event" if count == 1 else f"{count} events"


def _finding(key: tuple[str, str], seq: int | None, what: str) -> Finding:
    kind, name = key
    return Finding(int(name) if kind == "case" else name, seq, what, kind)


def _compare_chain(key: tuple[str, str], events: list[Chained], wanted: dict[int, list[_Seen]]) -> Finding | None:
    """Recompute the chain's hashes from the stored events (never trusting a stored hash) and
    compare them with every head a checkpoint saw: the first difference, or a chain shorter
    than a checkpoint saw."""
    last = max(wanted)
    running, count = GENESIS_HASH, 0
    for event in events:
        if event.seq != count + 1:
            break
        running = chain_hash(event.stream(), event.seq, event.type, event.actor, event.occurred_at,
                             event.payload_json, running)
        count = event.seq
        for seen in wanted.get(count, ()):
            if seen.hash != running:
                return _finding(key, count, f"rewritten: the stored events #1–#{count} hash to {running[:16]}…, "
                                            f"checkpoint #{seen.sequence} ({seen.at}) recorded {seen.hash[:16]}… "
                                            f"(event #{count} or one before it was changed)")
        if count >= last:
            return None
    seen = wanted[last][0]
    saw = f"truncated: checkpoint #{seen.sequence} ({seen.at}) saw {_events(last)}; "
    if count == len(events):
        return _finding(key, None, saw + f"the database has {count}")
    return _finding(key, None, saw + f"the stored chain follows on only to #{count} (next is #{events[count].seq}: "
                                     "an event is missing or doubled)")


ANCHOR_KIND = "checkpoint"


def queue_anchor_mails(db: Storage, written: Written, now: datetime) -> int:
    """Once a business day, the latest checkpoint's anchor (sequence, time, Merkle root) to every
    active coordinator of a province, through the outbox (exactly once a day each: the dedupe key
    names the day): a copy of the anchor in mailboxes the server cannot rewrite, for
    ``workflow audit verify --anchor``. Returns how many mails were queued (0: already today)."""
    require_aware(now, "now")
    today = now.astimezone(BUSINESS_TZ).date()
    c = written.checkpoint
    context = {"sequence": c.sequence, "merkle_root": c.merkle_root, "chains": len(c.chains),
               "created_at": c.created_at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M"), "file": written.name}
    rounds: dict[str, str] = {}  # province → its latest round (an outbox row belongs to a round)
    for rnd in sorted(db.rounds.rounds(), key=lambda r: r.year):
        rounds[rnd.province_id] = rnd.id
    entries = []
    for coordinator in db.directory.coordinators(active_only=True):
        place = db.directory.jurisdiction(coordinator.jurisdiction_id)
        if place is None or place.parent_id is not None or place.id not in rounds:
            continue  # the anchor goes to the province's own coordinators
        entries.append(OutboxEntry(f"{ANCHOR_KIND}:{today.isoformat()}:{coordinator.id}", ANCHOR_KIND,
                                   rounds[place.id], ANCHOR_KIND, today, coordinator_id=coordinator.id,
                                   context=context))
    if not entries:
        return 0
    with db.unit_of_work(core=True) as uow:
        queued = uow.outbox.add(entries, now)
        uow.commit()
    return queued

"""Evidence (佐证材料): files attached to a case per criterion, stored content-addressed.

The bytes go to the evidence store first (idempotent: same content, same name), then
the attachment is an event on the case. If the event is refused, the blob stays as an
unreferenced file: harmless (content-addressed) and reused by the next attach of the
same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ..domain.case import Actor
from ..domain.errors import InvalidInput, StorageUnavailable
from ..domain.events import Event
from .cases import ActionResult, dry_run, perform_actions, read_case
from .ports import ArchiveEntry, EvidenceBlobs, Storage


@dataclass(frozen=True, slots=True)
class AttachedFile:
    """A file on a case: by content (sha256), its name and type, who attached it and when."""

    sha256: str
    filename: str
    size: int
    type: str
    attached_by: str
    attached_at: datetime

    @staticmethod
    def fields_of(event: Event) -> dict[str, Any]:
        """The attachment as its event recorded it."""
        p = event.payload
        return {"sha256": p["sha256"], "filename": p["filename"], "size": int(p["size"]), "type": p["type"],
                "attached_by": event.actor, "attached_at": event.occurred_at}


@dataclass(frozen=True, slots=True)
class DocumentItem(AttachedFile):
    document: str
    name: str


@dataclass(frozen=True, slots=True)
class EvidenceItem(AttachedFile):
    criterion: str
    item_name: str


def attach_bytes(store: Storage, blobs: EvidenceBlobs, case_id: int, criterion: str,
                 files: list[tuple[str, bytes]], actor: Actor, now: datetime) -> list[ActionResult]:
    """Attach named files to ``criterion`` of the case, all or none.

    Everything is checked before anything is written: each file's size and type (by
    content), and the attachments themselves against the case as it is (unknown case or
    criterion, another unit's case, a file already there)."""
    return _attach(store, blobs, case_id, "attach_evidence", {"criterion": criterion}, files, actor, now)


def attach_document_bytes(store: Storage, blobs: EvidenceBlobs, case_id: int, document: str,
                          files: list[tuple[str, bytes]], actor: Actor, now: datetime) -> list[ActionResult]:
    """Attach named files as one of the round's required documents (自评报告 ...), all or none."""
    return _attach(store, blobs, case_id, "attach_document", {"document": document}, files, actor, now)


def _attach(store: Storage, blobs: EvidenceBlobs, case_id: int, action: str, target: dict[str, str],
            files: list[tuple[str, bytes]], actor: Actor, now: datetime) -> list[ActionResult]:
    problems = []
    for name, data in files:
        try:
            blobs.check(data, name)
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidInput("evidence refused; nothing was attached", problems)
    steps = []
    for name, data in files:
        sha256, kind = blobs.check(data, name)
        steps.append((action, {**target, "sha256": sha256, "filename": name, "size": len(data), "type": kind}))
    dry_run(store, case_id, steps, actor, now)
    for name, data in files:
        try:
            blobs.put(data, name)
        except OSError as exc:  # disk full, file size limit, I/O error: nothing is attached
            raise StorageUnavailable(f"cannot store {name}: {exc.strerror or exc}; nothing was attached",
                                     errno=exc.errno) from exc
    return perform_actions(store, case_id, steps, actor, now)


def list_evidence(store: Storage, case_id: int) -> list[EvidenceItem]:
    """The case's evidence in rubric order (the order the notice asks for), then attachment order."""
    found = read_case(store, case_id, events=True)
    case, ctx, events = found.case, found.ctx, found.events
    details = {}
    for e in events:
        if e.type == "EvidenceAttached":
            details[(e.payload["criterion"], e.payload["sha256"])] = e
    order = {c.code: i for i, c in enumerate(ctx.rubric.criteria())}
    item_of = {c.code: item.name for item in ctx.rubric.items() for c in item.criteria}
    out = []
    for position, (criterion, sha, filename) in enumerate(case.evidence):
        e = details[(criterion, sha)]  # the latest attachment of this file to this criterion
        out.append((order.get(criterion, len(order)), position, EvidenceItem(
            **{**AttachedFile.fields_of(e), "filename": filename}, criterion=criterion,
            item_name=item_of.get(criterion, ""))))
    return [item for _, _, item in sorted(out, key=lambda t: (t[0], t[1]))]


def list_documents(store: Storage, case_id: int) -> list[DocumentItem]:
    """The case's required documents on file, in the order the round's calendar lists them."""
    found = read_case(store, case_id, events=True)
    case, ctx, events = found.case, found.ctx, found.events
    details = {(e.payload["document"], e.payload["sha256"]): e for e in events if e.type == "DocumentAttached"}
    names = {d.id: d.name for d in ctx.documents}
    order = {d.id: i for i, d in enumerate(ctx.documents)}
    out = []
    for position, (document, sha, filename) in enumerate(case.documents):
        e = details[(document, sha)]
        out.append((order.get(document, len(order)), position, DocumentItem(
            **{**AttachedFile.fields_of(e), "filename": filename}, document=document,
            name=names.get(document, document))))
    return [item for _, _, item in sorted(out, key=lambda t: (t[0], t[1]))]


_SUFFIXES = {"jpeg": (".jpg", ".jpeg"), "tiff": (".tif", ".tiff")}


def _named_by_content(item: EvidenceItem | DocumentItem) -> str:
    """The file name with the extension its content has (a PDF uploaded as .exe leaves as .pdf)."""
    path = Path(item.filename)
    if path.suffix.lower() in _SUFFIXES.get(item.type, (f".{item.type}",)):
        return item.filename
    return f"{path.stem}{_SUFFIXES.get(item.type, (f'.{item.type}',))[0]}"


def export_archive(store: Storage, blobs: EvidenceBlobs, case_id: int, out: Path | BinaryIO) -> int:
    """One ZIP of what the case submits: the required documents first (``00 报送材料/<nn>
    <document> <file name>``), then the evidence in rubric order (``<criterion> <item>/<nn>
    <file name>``), as the notice asks (按照评价标准项目编号顺序)."""
    items = list_evidence(store, case_id)
    counters: dict[str, int] = {}
    entries = []
    for n, doc in enumerate(list_documents(store, case_id), start=1):
        name = f"{doc.name} {_named_by_content(doc)}".replace(":", "：").replace("/", "／")
        entries.append(ArchiveEntry(f"00 报送材料/{n:02d} {name}", doc.sha256))
    for item in items:
        counters[item.criterion] = counters.get(item.criterion, 0) + 1
        folder = f"{item.criterion} {item.item_name}".replace(":", "：").replace("/", "／")
        entries.append(ArchiveEntry(f"{folder}/{counters[item.criterion]:02d} {_named_by_content(item)}",
                                    item.sha256))
    blobs.archive(entries, out)
    return len(entries)

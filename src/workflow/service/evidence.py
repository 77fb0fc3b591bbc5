"""Evidence (佐证材料): files attached to a case per criterion, stored content-addressed.

The bytes go to the evidence store first (idempotent: same content, same name), then
the attachment is an event on the case. If the event is refused, the blob stays as an
unreferenced file: harmless (content-addressed) and reused by the next attach of the
same bytes.

Every name is judged by ``filename_problem`` (no control or bidirectional characters), and a
case holds at most its :class:`EvidenceQuota` of evidence and documents together, checked
before any bytes are stored and again in the transaction that records the attachment.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ..domain.case import Actor, CaseState, apply, decide
from ..domain.errors import InvalidInput, Problem, StorageUnavailable
from ..domain.events import Event
from ..domain.text import filename_problem
from .cases import ActionResult, read_case, take
from .ports import ArchiveEntry, CaseStore, EvidenceBlobs, Storage


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


@dataclass(frozen=True, slots=True)
class EvidenceQuota:
    """The most one case may hold of evidence and documents together: bytes and files (every
    attachment counts, the same file on two criteria twice: the ZIP holds it twice)."""

    max_bytes: int
    max_files: int


class QuotaExceeded(InvalidInput):
    """An upload that would take a case past its quota (413, like a file over the size limit)."""

    code = "too_large"


def attach_bytes(store: Storage, blobs: EvidenceBlobs, case_id: int, criterion: str,
                 files: list[tuple[str, bytes]], actor: Actor, now: datetime, *,
                 quota: EvidenceQuota) -> list[ActionResult]:
    """Attach named files to ``criterion`` of the case, all or none.

    Everything is checked before anything is written: each file's name, size and type (by
    content), the attachments themselves against the case as it is (unknown case or
    criterion, another unit's case, a file already there), and the case's ``quota``."""
    return _attach(store, blobs, case_id, "attach_evidence", {"criterion": criterion}, files, actor, now, quota)


def attach_document_bytes(store: Storage, blobs: EvidenceBlobs, case_id: int, document: str,
                          files: list[tuple[str, bytes]], actor: Actor, now: datetime, *,
                          quota: EvidenceQuota) -> list[ActionResult]:
    """Attach named files as one of the round's required documents (自评报告 ...), all or none."""
    return _attach(store, blobs, case_id, "attach_document", {"document": document}, files, actor, now, quota)


def _checked(blobs: EvidenceBlobs, action: str, target: dict[str, str],
             files: list[tuple[str, bytes]]) -> list[tuple[str, dict[str, Any]]]:
    """The attachments the files make, once every file's name and content is acceptable."""
    problems: list[Problem] = []
    steps: list[tuple[str, dict[str, Any]]] = []
    for name, data in files:
        bad_name = filename_problem(name)
        if bad_name is not None:  # the name is shown escaped: it may hide its own letters
            problems.append(Problem("filename", f"{name!r}: {bad_name[0]}", f"{name!r}：{bad_name[1]}"))
            continue
        try:
            sha256, kind = blobs.check(data, name)
        except InvalidInput as exc:
            problems.extend(exc.problems)
            continue
        steps.append((action, {**target, "sha256": sha256, "filename": name, "size": len(data), "type": kind}))
    if problems:
        listed = "；".join(f"{p.where}：{p.zh or p.what}" for p in problems)
        raise InvalidInput("evidence refused; nothing was attached", problems, f"佐证材料不符合要求，未添加：{listed}")
    return steps


def _attach(store: Storage, blobs: EvidenceBlobs, case_id: int, action: str, target: dict[str, str],
            files: list[tuple[str, bytes]], actor: Actor, now: datetime, quota: EvidenceQuota
            ) -> list[ActionResult]:
    steps = _checked(blobs, action, target, files)
    with store.reader() as reading:  # refused here: no bytes are stored
        case = reading.get(case_id)
        ctx = reading.round_context(case.round_id)
        probe = case
        for step, inputs in steps:
            probe = apply(probe, decide(probe, step, inputs, actor, now, ctx))
        _within_quota(reading, case, steps, quota)
    for name, data in files:
        try:
            blobs.put(data, name)
        except OSError as exc:  # disk full, file size limit, I/O error: nothing is attached
            raise StorageUnavailable(f"cannot store {name}: {exc.strerror or type(exc).__name__}; "
                                     f"nothing was attached",
                                     f"无法保存 {name}（{exc.strerror or type(exc).__name__}），未添加任何文件",
                                     errno=exc.errno) from exc
    results = []
    with store.unit_of_work() as uow:
        # Checked again on the case as this transaction writes it: the write is guarded by the
        # case's version, so of two uploads at once only one passes on what it read.
        case = uow.get(case_id)
        ctx = uow.round_context(case.round_id)
        _within_quota(uow, case, steps, quota)
        for step, inputs in steps:
            case, event = take(uow, case, step, inputs, actor, now, ctx)
            results.append(ActionResult(case, event, ctx, now))
        uow.commit()
    return results


def _amount(size: int) -> str:
    return f"{size} bytes ({size / 2**20:.1f} MiB)"


def _amount_zh(size: int) -> str:
    return f"{size} 字节（{size / 2**20:.1f} MiB）"


def _within_quota(uow: CaseStore, case: CaseState, steps: list[tuple[str, dict[str, Any]]],
                  quota: EvidenceQuota) -> None:
    """QuotaExceeded when the case's files with these added pass the quota. Bytes are what the
    case has put into the storage: every distinct file it ever attached, removed ones included
    (the storage keeps them for the history), so attaching and removing cannot fill the disk;
    the same content again costs nothing. Files are those the case holds now."""
    held = [sha for _, sha, _ in case.evidence] + [sha for _, sha, _ in case.documents]
    stored: dict[str, int] = {}
    if case.version > 1:
        for e in uow.events(case.id):
            if e.type in ("EvidenceAttached", "DocumentAttached"):
                stored[e.payload["sha256"]] = int(e.payload["size"])
    used_bytes, used_files = sum(stored.values()), len(held)
    new = {inputs["sha256"]: int(inputs["size"]) for _, inputs in steps if inputs["sha256"] not in stored}
    add_bytes, add_files = sum(new.values()), len(steps)
    problems = []
    if used_bytes + add_bytes > quota.max_bytes:
        problems.append(Problem("bytes", f"{_amount(used_bytes)} used + {_amount(add_bytes)} > the quota of "
                                         f"{_amount(quota.max_bytes)}",
                                f"已用 {_amount_zh(used_bytes)} + 本次 {_amount_zh(add_bytes)}，"
                                f"超过配额 {_amount_zh(quota.max_bytes)}"))
    if used_files + add_files > quota.max_files:
        problems.append(Problem("files", f"{used_files} files used + {add_files} > the quota of {quota.max_files}",
                                f"已有 {used_files} 个文件 + 本次 {add_files} 个，超过配额 {quota.max_files} 个"))
    if problems:
        raise QuotaExceeded(
            f"case {case.id} would pass its evidence quota of {_amount(quota.max_bytes)} in {quota.max_files} "
            f"files: {_amount(used_bytes)} in {used_files} files are used, and this upload would add "
            f"{_amount(add_bytes)} in {add_files} files; nothing was attached", problems,
            f"案件 {case.id} 将超出佐证材料配额（{_amount_zh(quota.max_bytes)}、{quota.max_files} 个文件）："
            f"已用 {_amount_zh(used_bytes)}、{used_files} 个文件，本次上传将增加 {_amount_zh(add_bytes)}、"
            f"{add_files} 个文件；未添加任何文件",
            quota_bytes=quota.max_bytes, quota_files=quota.max_files, used_bytes=used_bytes, used_files=used_files,
            adding_bytes=add_bytes, adding_files=add_files)


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


def named_by_content(item: EvidenceItem | DocumentItem) -> str:
    """The file name with the extension its content has (a PDF uploaded as .exe leaves as .pdf)."""
    path = Path(item.filename)
    if path.suffix.lower() in _SUFFIXES.get(item.type, (f".{item.type}",)):
        return item.filename
    return f"{path.stem}{_SUFFIXES.get(item.type, (f'.{item.type}',))[0]}"


def _archive_entries(store: Storage, case_id: int) -> list[ArchiveEntry]:
    """What the case submits, as ZIP entries: the required documents first (``00 报送材料/<nn>
    <document> <file name>``), then the evidence in rubric order (``<criterion> <item>/<nn>
    <file name>``), as the notice asks (按照评价标准项目编号顺序)."""
    items = list_evidence(store, case_id)
    counters: dict[str, int] = {}
    entries = []
    for n, doc in enumerate(list_documents(store, case_id), start=1):
        name = f"{doc.name} {named_by_content(doc)}".replace(":", "：").replace("/", "／")
        entries.append(ArchiveEntry(f"00 报送材料/{n:02d} {name}", doc.sha256, doc.attached_at))
    for item in items:
        counters[item.criterion] = counters.get(item.criterion, 0) + 1
        folder = f"{item.criterion} {item.item_name}".replace(":", "：").replace("/", "／")
        entries.append(ArchiveEntry(f"{folder}/{counters[item.criterion]:02d} {named_by_content(item)}",
                                    item.sha256, item.attached_at))
    return entries


def export_archive(store: Storage, blobs: EvidenceBlobs, case_id: int, out: Path | BinaryIO) -> int:
    """One ZIP of what the case submits (see :func:`_archive_entries`) written to ``out``."""
    entries = _archive_entries(store, case_id)
    blobs.archive(entries, out)
    return len(entries)


def archive_chunks(store: Storage, blobs: EvidenceBlobs, case_id: int) -> Iterator[bytes]:
    """The same ZIP as :func:`export_archive`, piece by piece as it is written (for a download
    that starts at once and never holds the archive): the case is read, the entries checked
    and the blobs found before this returns, so those errors come before the first byte."""
    return blobs.archive_chunks(_archive_entries(store, case_id))

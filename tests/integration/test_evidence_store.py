"""Evidence files on a real folder: type by content, content addressing, atomic writes, archives."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import struct
import zipfile
from pathlib import Path

import openpyxl
import pytest

from workflow.adapters.evidence_store import (
    ALLOWED_TYPES,
    ArchiveEntry,
    CorruptBlob,
    LocalEvidenceStore,
    build_archive,
    sniff,
)
from workflow.domain.errors import InvalidInput, NotFound

CT = "application/vnd.openxmlformats-officedocument.{}.main+xml"


# ---------------------------------------------------------------- samples
def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def ooxml(kind: str, folder: str, part: str) -> bytes:
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        f'<Override PartName="/{folder}/{part}" ContentType="{CT.format(kind)}"/></Types>'
    ).encode()
    return zip_of({"[Content_Types].xml": content_types, f"{folder}/{part}": b"<x/>"})


def ole2_entry(name: str, kind: int) -> bytes:
    """A 128-byte compound-file directory entry: UTF-16LE name, its byte length, its type."""
    raw = (name + "\0").encode("utf-16-le")
    return raw.ljust(64, b"\0") + struct.pack("<HB", len(raw), kind) + bytes(128 - 67)


def ole2(stream: str) -> bytes:
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    return header + ole2_entry("Root Entry", 5) + ole2_entry(stream, 2) + bytes(256)


def real_xlsx() -> bytes:
    book = openpyxl.Workbook()
    book.active.append(["单位", "用电量"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(13)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(20)
TEXT = "节约型机关 自评报告\n2021年用电量下降 5%\n".encode()

ACCEPTED = [
    ("实施方案.pdf", PDF, "pdf"),
    ("照片.png", PNG, "png"),
    ("照片.jpg", JPEG, "jpeg"),
    ("a.gif", b"GIF89a" + bytes(10), "gif"),
    ("a.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(8), "webp"),
    ("scan.tif", b"II*\x00" + bytes(12), "tiff"),
    ("报告.docx", ooxml("wordprocessingml.document", "word", "document.xml"), "docx"),
    ("台账.xlsx", ooxml("spreadsheetml.sheet", "xl", "workbook.xml"), "xlsx"),
    ("汇报.pptx", ooxml("presentationml.presentation", "ppt", "presentation.xml"), "pptx"),
    ("openpyxl.xlsx", real_xlsx(), "xlsx"),
    ("old.doc", ole2("WordDocument"), "doc"),
    ("old.xls", ole2("Workbook"), "xls"),
    ("old.ppt", ole2("PowerPoint Document"), "ppt"),
    ("发票.ofd", zip_of({"OFD.xml": b"<ofd:OFD/>", "Doc_0/Document.xml": b"<x/>"}), "ofd"),
    ("材料.zip", zip_of({"a.txt": b"a"}), "zip"),
    ("说明.txt", TEXT, "txt"),
    ("disguised.pdf", zip_of({"a.txt": b"a"}), "zip"),  # type follows content, not name
    ("setup.exe", PDF, "pdf"),
]
REFUSED = [
    ("gbk.txt", "节约型机关".encode("gbk"), "unrecognised content"),
    ("virus.pdf", b"\x7fELF\x02\x01\x01" + bytes(20), "elf"),
    ("report.doc", b"MZ\x90\x00\x03" + bytes(20) + b"PE\x00\x00", "MZ/PE"),
    ("run.txt", b"#!/bin/sh\nrm -rf /\n", "script"),
    ("page.txt", b"  \n<!DOCTYPE HTML><html><body>hi</body></html>", "html"),
    ("page2.txt", b"<HTML>\n<script>x()</script>", "html"),
    ("setup.msi", ole2("\u4840\u3b3f"), "ole2"),
    ("bin.dat", b"\x00\x01\x02\x03", "unrecognised content"),
    ("broken.zip", b"PK\x03\x04 not really a zip", "unrecognised content"),
]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def store(tmp_path: Path) -> LocalEvidenceStore:
    return LocalEvidenceStore(tmp_path / "blobs")


# ---------------------------------------------------------------- types
@pytest.mark.parametrize(("filename", "data", "kind"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_by_content(store: LocalEvidenceStore, filename: str, data: bytes, kind: str) -> None:
    blob = store.put(data, filename)
    assert (blob.type, blob.mime, blob.size) == (kind, ALLOWED_TYPES[kind], len(data))
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert store.open(blob.sha256) == data


@pytest.mark.parametrize(("filename", "data", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_by_content(store: LocalEvidenceStore, filename: str, data: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        store.put(data, filename)
    message = str(caught.value)
    assert filename in message and reason in message and "allowed types: doc, docx" in message
    assert caught.value.problems[0].where == filename
    assert files_under(store.root) == []


def test_sniff_is_none_for_unknown_and_names_refused_kinds() -> None:
    assert sniff(b"") is None and sniff("中文".encode("gbk")) is None
    assert sniff(b"\x7fELF") == "elf executable" and sniff(b"\r\n <html>") == "html"
    assert sniff(b"<htmlish text") == "txt"  # not a tag: plain text
    # a stream name inside some stream's data is not a directory entry
    assert sniff(ole2("Other") + b"x" + ole2_entry("WordDocument", 2)) == "ole2"


def test_allowed_types_can_be_narrowed(tmp_path: Path) -> None:
    narrow = LocalEvidenceStore(tmp_path, allowed=frozenset({"pdf"}))
    with pytest.raises(InvalidInput, match=r"photo\.png: .*content is png; allowed types: pdf$"):
        narrow.put(PNG, "photo.png")
    with pytest.raises(ValueError, match="elf"):
        LocalEvidenceStore(tmp_path, allowed=frozenset({"pdf", "elf"}))


# ---------------------------------------------------------------- size
def test_empty_file_refused(store: LocalEvidenceStore) -> None:
    with pytest.raises(InvalidInput, match=r"空\.pdf: empty file"):
        store.put(b"", "空.pdf")
    assert files_under(store.root) == []


def test_oversized_file_refused_with_both_numbers(tmp_path: Path) -> None:
    small = LocalEvidenceStore(tmp_path / "blobs", max_bytes=100)
    assert small.put(PDF.ljust(100, b" "), "ok.pdf").size == 100
    with pytest.raises(InvalidInput, match=r"big\.pdf: too large: 101 bytes, more than the limit of 100 bytes"):
        small.put(PDF.ljust(101, b" "), "big.pdf")
    assert len(files_under(small.root)) == 1


# ---------------------------------------------------------------- storage
def test_same_bytes_stored_once_with_fan_out(store: LocalEvidenceStore) -> None:
    first = store.put(PDF, "单位甲/方案.pdf")
    mtime = (store.root / first.sha256[:2] / first.sha256[2:4] / first.sha256).stat().st_mtime_ns
    second = store.put(PDF, "单位乙/方案.pdf")
    assert (first.created, second.created) == (True, False)
    assert first.sha256 == second.sha256
    path = store.root / first.sha256[:2] / first.sha256[2:4] / first.sha256
    assert files_under(store.root) == [path]
    assert path.stat().st_mtime_ns == mtime and path.read_bytes() == PDF
    assert store.path_hint(first.sha256) == str(path)
    assert store.exists(first.sha256) and not store.exists("0" * 64)


def test_open_missing_blob_is_not_found(store: LocalEvidenceStore) -> None:
    with pytest.raises(NotFound, match="f" * 64):
        store.open("f" * 64)


def test_bad_sha256_refused_before_touching_disk(store: LocalEvidenceStore) -> None:
    with pytest.raises(InvalidInput, match="not a sha256"):
        store.open("../../etc/passwd")


def test_corrupt_blob_reported(store: LocalEvidenceStore) -> None:
    blob = store.put(PDF, "a.pdf")
    Path(store.path_hint(blob.sha256) or "").write_bytes(PDF + b"tampered")
    with pytest.raises(CorruptBlob, match=f"evidence blob {blob.sha256} is corrupt"):
        store.open(blob.sha256)


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_write_leaves_nothing(store: LocalEvidenceStore, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, disk_full)
    with pytest.raises(OSError) as caught:
        store.put(PDF, "a.pdf")
    assert caught.value.errno == errno.ENOSPC
    assert files_under(store.root) == []
    monkeypatch.undo()
    assert store.put(PDF, "a.pdf").created  # nothing half-written was taken for the blob


# ---------------------------------------------------------------- archive
def stored(store: LocalEvidenceStore, *items: tuple[str, bytes]) -> list[ArchiveEntry]:
    return [ArchiveEntry(name, store.put(data, name.rsplit("/", 1)[-1]).sha256) for name, data in items]


def test_archive_keeps_order_names_and_contents(store: LocalEvidenceStore, tmp_path: Path) -> None:
    entries = stored(
        store,
        ("2.2.1.1 管理制度/01 实施方案.pdf", PDF),
        ("2.2.1.1 管理制度/02 台账.xlsx", real_xlsx()),
        ("1.1 自评/说明.txt", TEXT),  # out of code order on purpose: the caller's order is kept
        ("3 照片/现场.png", PNG),
        ("3 照片/同一份方案.pdf", PDF),  # one blob under two names
    )
    out = tmp_path / "归档.zip"
    build_archive(store, entries, out)
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == [e.path_in_zip for e in entries]
        for info, entry in zip(zf.infolist(), entries):
            assert info.flag_bits & 0x800 and info.compress_type == zipfile.ZIP_DEFLATED
            assert zf.read(info) == store.open(entry.sha256)
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["归档.zip"]  # no temp left


def test_archive_to_stream(store: LocalEvidenceStore) -> None:
    entries = stored(store, ("b.pdf", PDF), ("a.txt", TEXT))
    buffer = io.BytesIO()
    build_archive(store, entries, buffer)
    assert zipfile.ZipFile(buffer).namelist() == ["b.pdf", "a.txt"]


def test_archive_refuses_duplicate_and_unsafe_paths(store: LocalEvidenceStore, tmp_path: Path) -> None:
    [pdf] = stored(store, ("x.pdf", PDF))
    names = ["1/方案.pdf", "2/a.pdf", "1/方案.pdf", "2/A.PDF", "../evil.pdf"]
    out = tmp_path / "out.zip"
    with pytest.raises(InvalidInput) as caught:
        build_archive(store, [ArchiveEntry(n, pdf.sha256) for n in names], out)
    problems = [(p.where, p.what) for p in caught.value.problems]
    assert problems == [
        ("entry 3 ('1/方案.pdf')", "duplicate path (same as '1/方案.pdf')"),
        ("entry 4 ('2/A.PDF')", "duplicate path (same as '2/a.pdf')"),
        ("entry 5 ('../evil.pdf')", "not a relative path with '/' separators (no '..', empty or drive parts)"),
    ]
    assert not out.exists()


def test_archive_missing_blob_not_found(store: LocalEvidenceStore, tmp_path: Path) -> None:
    entries = stored(store, ("a.pdf", PDF)) + [ArchiveEntry("b/丢失.png", "ab" * 32)]
    out = tmp_path / "out.zip"
    with pytest.raises(NotFound, match=r"b/丢失\.png: blob " + "ab" * 32):
        build_archive(store, entries, out)
    assert not out.exists()


def test_archive_failure_midway_leaves_no_file(store: LocalEvidenceStore, tmp_path: Path) -> None:
    entries = stored(store, ("a.pdf", PDF), ("b.png", PNG))
    Path(store.path_hint(entries[1].sha256) or "").write_bytes(b"corrupted")
    out = tmp_path / "out.zip"
    with pytest.raises(CorruptBlob):
        build_archive(store, entries, out)
    assert files_under(tmp_path) == files_under(store.root)  # neither out.zip nor its temp
    assert not out.exists()


def test_archive_replaces_an_old_file_only_when_done(store: LocalEvidenceStore, tmp_path: Path) -> None:
    out = tmp_path / "out.zip"
    out.write_bytes(b"old")
    entries = stored(store, ("a.pdf", PDF))
    with pytest.raises(NotFound):
        build_archive(store, entries + [ArchiveEntry("b.pdf", "cd" * 32)], out)
    assert out.read_bytes() == b"old"
    build_archive(store, entries, out)
    assert zipfile.ZipFile(out).namelist() == ["a.pdf"]

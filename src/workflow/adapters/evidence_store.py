"""Evidence files (佐证材料): content-addressed storage and the archive a reviewer downloads.

Blobs are named by the sha256 of their bytes, so the same file uploaded twice (or shared
by co-located units, 合署办公) is stored once. The type of a file is decided by its
CONTENT (magic bytes, the member names of a ZIP), never by the name the uploader gave.
Which case and criterion points to which blob is the database's business, not this one's.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import structlog

from ..domain.dates import BUSINESS_TZ
from ..domain.errors import DomainError, InvalidInput, NotFound, Problem
from ..service.ports import ArchiveEntry, EvidenceBlobs

log = structlog.get_logger("workflow.evidence")

ALLOWED_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "ofd": "application/ofd",
    "zip": "application/zip",
    "txt": "text/plain; charset=utf-8",
}
"""Type name (also the file extension to use) -> MIME type, for every type a unit may upload."""

# Recognised but never allowed; sniff() names them so that a refusal can say what was seen.
_EXECUTABLE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "elf executable"),
    (b"MZ", "windows executable (MZ/PE)"),
    (b"#!", "script (#!)"),
    (b"\xfe\xed\xfa\xce", "mach-o executable"),
    (b"\xfe\xed\xfa\xcf", "mach-o executable"),
    (b"\xce\xfa\xed\xfe", "mach-o executable"),
    (b"\xcf\xfa\xed\xfe", "mach-o executable"),
)
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Streams that make an OLE2 compound file a Word, Excel or PowerPoint document.
_OLE2_STREAMS: tuple[tuple[str, str], ...] = (
    ("WordDocument", "doc"),
    ("Workbook", "xls"),
    ("Book", "xls"),
    ("PowerPoint Document", "ppt"),
)
_OOXML_MAIN = re.compile(rb"officedocument\.(wordprocessingml|spreadsheetml|presentationml)\.[a-z]+\.main\+xml")
_OOXML_TYPES = {b"wordprocessingml": "docx", b"spreadsheetml": "xlsx", b"presentationml": "pptx"}
_CONTENT_TYPES_LIMIT = 1024 * 1024
# HTML as browsers sniff it (WHATWG MIME sniffing): one of these, then a space or '>'.
_HTML_START = re.compile(
    rb"<(!doctype html|html|head|body|script|iframe|style|title|table|div|font|br|p|a|b|h1|!--)[ \t\n\f\r>]",
    re.IGNORECASE,
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
CHUNK = 1024 * 1024
"""Bytes read from a blob at a time when it is streamed (a download, a ZIP)."""


def sniff(data: bytes) -> str | None:
    """The type of ``data`` judged by its content: a key of ``ALLOWED_TYPES``, the name of a
    recognised but refused type (executable, script, HTML, other OLE2 file), or None."""
    if not data:
        return None
    for magic, name in _EXECUTABLE_MAGIC + _IMAGE_MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(_OLE2_MAGIC):
        return _sniff_ole2(data)
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _sniff_zip(data)
    head = data[:1024].lstrip(b"\xef\xbb\xbf").lstrip(b" \t\n\f\r")
    if _HTML_START.match(head):
        return "html"
    if b"\x00" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "txt"


def _sniff_ole2(data: bytes) -> str:
    """doc/xls/ppt by the name of a stream in the directory; any other compound file
    (an .msi installer, an Outlook .msg, an encrypted OOXML file) is "ole2", refused.

    Directory entries are 128 bytes, sector-aligned: UTF-16LE name, then its byte length
    (terminator included) at +64 and the object type (2 = stream) at +66.
    """
    for stream, name in _OLE2_STREAMS:
        needle = (stream + "\x00").encode("utf-16-le")
        at = data.find(needle, 512)
        while at != -1:
            if at % 128 == 0 and data[at + 64 : at + 67] == struct.pack("<HB", len(needle), 2):
                return name
            at = data.find(needle, at + 1)
    return "ole2"


def _sniff_zip(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            if "OFD.xml" in names:
                return "ofd"
            if "[Content_Types].xml" in names:
                with zf.open("[Content_Types].xml") as member:
                    found = _OOXML_MAIN.search(member.read(_CONTENT_TYPES_LIMIT))
                if found:
                    return _OOXML_TYPES[found.group(1)]
    except (zipfile.BadZipFile, zlib.error, EOFError):
        return None  # says ZIP, is not one
    except (RuntimeError, NotImplementedError):
        pass  # encrypted or unusual compression of [Content_Types].xml: not OOXML we can read
    return "zip"


class CorruptBlob(DomainError):
    """A stored blob whose bytes no longer hash to its name."""

    code = "corrupt_blob"


@dataclass(frozen=True, slots=True)
class StoredBlob:
    sha256: str
    size: int
    type: str
    mime: str
    created: bool  # False: the same bytes were already stored


def _check_sha256(sha256: str) -> str:
    value = sha256.lower()
    if not _SHA256.fullmatch(value):
        raise InvalidInput(f"not a sha256: {sha256!r}",
                           [Problem("sha256", f"{sha256!r} is not 64 hex digits", f"{sha256!r} 不是64位十六进制数")],
                           f"不是有效的 sha256：{sha256!r}")
    return value


class LocalEvidenceStore:
    """Blobs in a local folder, at ``root/ab/cd/<sha256>``."""

    def __init__(
        self, root: Path, max_bytes: int = 20 * 1024 * 1024, allowed: frozenset[str] = frozenset(ALLOWED_TYPES)
    ) -> None:
        unknown = sorted(allowed - ALLOWED_TYPES.keys())
        if unknown:
            raise ValueError(f"allowed: unknown types {', '.join(unknown)}; known: {', '.join(ALLOWED_TYPES)}")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.allowed = allowed

    def _path(self, sha256: str) -> Path:
        sha256 = _check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def check(self, data: bytes, filename: str) -> tuple[str, str]:
        """The content's sha256 and type, or InvalidInput if it would be refused; writes nothing."""
        if not data:
            raise InvalidInput(f"{filename}: empty file",
                               [Problem(filename, "empty file (0 bytes)", "空文件（0字节）")],
                               f"{filename}：空文件（0字节）")
        if len(data) > self.max_bytes:
            what = f"{len(data)} bytes, more than the limit of {self.max_bytes} bytes"
            what_zh = f"{len(data)}字节，超过上限{self.max_bytes}字节"
            raise InvalidInput(f"{filename}: too large: {what}", [Problem(filename, what, what_zh)],
                               f"{filename}：文件过大：{what_zh}")
        kind = sniff(data)
        if kind is None or kind not in self.allowed:
            seen = "unrecognised content" if kind is None else f"content is {kind}"
            what = f"{seen}; allowed types: {', '.join(sorted(self.allowed))}"
            what_zh = (f"{'无法识别的文件内容' if kind is None else f'文件内容为 {kind}'}；"
                       f"允许的类型：{'、'.join(sorted(self.allowed))}")
            raise InvalidInput(f"{filename}: type not allowed: {what}", [Problem(filename, what, what_zh)],
                               f"{filename}：文件类型不允许：{what_zh}")
        return hashlib.sha256(data).hexdigest(), kind

    def put(self, data: bytes, filename: str) -> StoredBlob:
        sha256, kind = self.check(data, filename)
        path = self._path(sha256)
        created = not path.is_file()  # already there: the same bytes, not rewritten
        if created:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
        return StoredBlob(sha256, len(data), kind, ALLOWED_TYPES[kind], created)

    def open(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            log.warning("evidence blob missing", sha256=sha256, path=str(path))
            raise NotFound(f"evidence file {sha256} is missing from the storage",
                           f"佐证材料文件 {sha256} 在存储中缺失", sha256=sha256) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256.lower():
            raise CorruptBlob(
                f"evidence blob {sha256} is corrupt: its {len(data)} bytes at {path} hash to {actual}",
                f"佐证材料文件 {sha256} 已损坏：{path} 处的{len(data)}字节的哈希值为 {actual}",
                sha256=sha256, actual=actual,
            )
        return data

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def size(self, sha256: str) -> int:
        path = self._path(sha256)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            log.warning("evidence blob missing", sha256=sha256, path=str(path))
            raise NotFound(f"evidence file {sha256} is missing from the storage",
                           f"佐证材料文件 {sha256} 在存储中缺失", sha256=sha256) from None

    def chunks(self, sha256: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The blob's bytes, ``chunk_size`` at a time, hashed as they are read: when they do not
        hash to the name, CorruptBlob is raised instead of the last chunk (a reader never gets
        the whole of a damaged file). The file is opened on the first ``next``."""
        path = self._path(sha256)
        try:
            with open(path, "rb") as stream:
                yield from _verified(stream, sha256, path, chunk_size)
        except FileNotFoundError:
            log.warning("evidence blob missing", sha256=sha256, path=str(path))
            raise NotFound(f"evidence file {sha256} is missing from the storage",
                           f"佐证材料文件 {sha256} 在存储中缺失", sha256=sha256) from None

    def archive(self, entries: list[ArchiveEntry], out: Path | BinaryIO) -> None:
        build_archive(self, entries, out)

    def archive_chunks(self, entries: list[ArchiveEntry]) -> Iterator[bytes]:
        return stream_archive(self, entries)

    def path_hint(self, sha256: str) -> str | None:
        return str(self._path(sha256))


def _verified(stream: BinaryIO, sha256: str, path: Path, chunk_size: int) -> Iterator[bytes]:
    """The stream's chunks; the last one only once all of them hash to ``sha256``."""
    digest = hashlib.sha256()
    chunk = stream.read(chunk_size)
    while chunk:
        digest.update(chunk)
        following = stream.read(chunk_size)
        if not following:
            break
        yield chunk
        chunk = following
    if digest.hexdigest() != sha256.lower():
        raise CorruptBlob(f"evidence blob {sha256} is corrupt: its bytes at {path} hash to {digest.hexdigest()}",
                          f"佐证材料文件 {sha256} 已损坏：{path} 处的内容哈希值为 {digest.hexdigest()}",
                          sha256=sha256, actual=digest.hexdigest())
    if chunk:
        yield chunk


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over ``path``. On any error
    the temp file is removed and the error re-raised as it is."""
    temp = _temp_beside(path)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; Windows cannot open a folder)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_entries(entries: Sequence[ArchiveEntry]) -> None:
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"entry {number} ({entry.path_in_zip!r})"
        name = entry.path_in_zip
        parts = name.split("/")
        if not name or "\\" in name or ":" in parts[0] or any(part in ("", ".", "..") for part in parts):
            problems.append(Problem(where, "not a relative path with '/' separators (no '..', empty or drive parts)",
                                    "须为以 '/' 分隔的相对路径（不能含 '..'、空段或盘符）"))
        key = name.casefold()  # Windows and macOS would extract 'A.pdf' and 'a.pdf' to one file
        if key in seen:
            problems.append(Problem(where, f"duplicate path (same as {seen[key]!r})",
                                    f"路径重复（与 {seen[key]!r} 相同）"))
        else:
            seen[key] = name
        if not _SHA256.fullmatch(entry.sha256.lower()):
            problems.append(Problem(where, f"{entry.sha256!r} is not a sha256", f"{entry.sha256!r} 不是有效的 sha256"))
    if problems:
        raise InvalidInput(f"archive: {len(problems)} bad entries", problems, f"压缩包：{len(problems)}个条目有误")


def _check_archive(store: EvidenceBlobs, entries: Sequence[ArchiveEntry]) -> None:
    """Every entry well named and every blob present, or the error saying which are not."""
    _check_entries(entries)
    missing = sorted({e.sha256 for e in entries if not store.exists(e.sha256)})
    if missing:
        lines = [f"{e.path_in_zip}: blob {e.sha256}" for e in entries if e.sha256 in missing]
        lines_zh = [f"{e.path_in_zip}：文件 {e.sha256}" for e in entries if e.sha256 in missing]
        raise NotFound(f"archive: {len(missing)} evidence blobs not found: {'; '.join(lines)}",
                       f"压缩包：{len(missing)}个佐证材料文件在存储中缺失：{'；'.join(lines_zh)}", sha256=missing)


def build_archive(store: EvidenceBlobs, entries: Sequence[ArchiveEntry], out: Path | BinaryIO) -> None:
    """Write a deflated ZIP of the blobs, in exactly the order of ``entries``.

    Every entry is checked (and every blob's presence) before anything is written. When
    ``out`` is a Path the ZIP goes to a temp file renamed into place at the end, so a
    failure never leaves a file at ``out``; a stream gets whatever was written before it.
    """
    _check_archive(store, entries)
    if not isinstance(out, Path):
        for _ in _write_zip(store, entries, out):
            pass
        return
    temp = _temp_beside(out)
    try:
        with open(temp, "xb") as stream:
            for _ in _write_zip(store, entries, stream):
                pass
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, out)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


class _Pipe:
    """A write-only, unseekable stream that keeps what was written until it is taken: the
    ZIP writer writes into it and the download sends what it holds (zipfile, seeing no
    ``tell``, writes each member's sizes after its data instead of seeking back)."""

    def __init__(self) -> None:
        self._held = bytearray()

    def write(self, data: bytes) -> int:
        self._held += data
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self._held)
        self._held.clear()
        return data


def stream_archive(store: EvidenceBlobs, entries: Sequence[ArchiveEntry]) -> Iterator[bytes]:
    """The ZIP of ``build_archive`` as it is written, piece by piece: it is never whole in
    memory, nor is any blob. The entries and the blobs' presence are checked before this
    returns, so those errors come before the first byte; a blob found damaged on the way
    stops the stream with CorruptBlob (the ZIP is left without its directory)."""
    _check_archive(store, entries)
    return _piped(store, list(entries))


def _piped(store: EvidenceBlobs, entries: list[ArchiveEntry]) -> Iterator[bytes]:
    pipe = _Pipe()
    for _ in _write_zip(store, entries, pipe):
        data = pipe.take()
        if data:
            yield data


def _write_zip(store: EvidenceBlobs, entries: Sequence[ArchiveEntry], stream: BinaryIO | _Pipe) -> Iterator[None]:
    """Write the ZIP to ``stream``, each blob read in chunks; pauses (yields) after every chunk
    and at the end, so that a caller can pass on what was written so far."""
    # zipfile sets the UTF-8 flag (0x800) on every non-ASCII name, so Chinese names survive.
    with zipfile.ZipFile(cast(BinaryIO, stream), "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for entry in entries:
            when = entry.modified.astimezone(BUSINESS_TZ).timetuple()[:6] if entry.modified else (1980, 1, 1, 0, 0, 0)
            info = zipfile.ZipInfo(entry.path_in_zip, when)  # the file's date: when it was attached (Beijing)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16  # as ZipFile.writestr marks a file
            info.file_size = store.size(entry.sha256)  # ZIP64 headers when a member needs them
            with zf.open(info, "w") as member:
                for chunk in store.chunks(entry.sha256):
                    member.write(chunk)
                    yield
    yield

"""Text that leaves or enters the system through files: one rule for each.

``safe_cell`` is how every XLSX and CSV the system writes neutralises user text that a
spreadsheet program would run as a formula; ``filename_problem`` is how every uploaded
file's name is judged (no control characters, no bidirectional overrides that make
``invoice‮fdp.exe`` read as ``invoiceexe.pdf``).
"""
from __future__ import annotations

import unicodedata
from typing import Any

# A cell whose text starts with one of these is a formula (or becomes one) in Excel,
# LibreOffice or WPS: = + - @ and the tab and carriage return that some of them strip first.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Bidirectional controls: embeddings, overrides, isolates and the invisible marks.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# Letters that show as nothing (fillers): they pad a name to push its real ending out of sight.
INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")
MAX_FILENAME = 200
MAX_FILENAME_BYTES = 200  # in UTF-8: a file system's name (255 bytes) with room for a ZIP entry's folder


def safe_cell(value: Any) -> Any:
    """``value`` as a spreadsheet cell that cannot run: text starting like a formula gets a
    leading apostrophe (shown as text, the way Excel marks typed-in text). Numbers, dates,
    decimals and None pass through unchanged; only ``str`` is user text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(values: Any) -> list[Any]:
    """Every cell of a row through :func:`safe_cell`."""
    return [safe_cell(v) for v in values]


def filename_problem(name: str) -> tuple[str, str] | None:
    """Why ``name`` cannot be a stored file's name, in English and Chinese; None if it can."""
    if not name or not name.strip():
        return "an empty file name", "文件名为空"
    if len(name) > MAX_FILENAME:
        return (f"longer than {MAX_FILENAME} characters ({len(name)})",
                f"文件名超过 {MAX_FILENAME} 个字符（{len(name)}）")
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        return (f"longer than {MAX_FILENAME_BYTES} bytes in UTF-8 ({len(name.encode('utf-8'))}; a Chinese character "
                "takes 3)", f"文件名过长：UTF-8 编码超过 {MAX_FILENAME_BYTES} 字节（{len(name.encode('utf-8'))} 字节；"
                            f"一个汉字占 3 字节，最多约 {MAX_FILENAME_BYTES // 3} 个汉字）")
    for ch in name:
        if ch in BIDI_CONTROLS:
            return (f"contains a bidirectional control character (U+{ord(ch):04X}) that disguises the name",
                    f"文件名含有改变文字方向的控制字符（U+{ord(ch):04X}）")
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or ch in INVISIBLE:
            return (f"contains a control or invisible character (U+{ord(ch):04X})",
                    f"文件名含有控制字符或不可见字符（U+{ord(ch):04X}）")
    if "/" in name or "\\" in name or name in (".", ".."):
        return "names a folder (contains / or \\, or is . or ..)", "文件名不能包含路径（/ 或 \\）"
    return None

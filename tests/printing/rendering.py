"""Workbooks as a clerk prints them: LibreOffice (``soffice --headless --convert-to pdf``) turns
them into PDF, poppler (``pdfinfo``, ``pdftotext``, ``pdftoppm``) reads the pages back.

Installed from Debian: ``apt-get install -y --no-install-recommends libreoffice-calc-nogui
fonts-noto-cjk poppler-utils`` (without fonts-noto-cjk Chinese prints as boxes). Every conversion
runs with a LibreOffice profile of its own (``-env:UserInstallation``), so runs never collide.
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("soffice", "pdfinfo", "pdftotext", "pdftoppm")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
SKIP_REASON = (f"LibreOffice/poppler not installed ({', '.join(MISSING)} not on PATH): the printing tests "
               "render workbooks with them (apt-get install libreoffice-calc-nogui fonts-noto-cjk poppler-utils)")

A4 = (595.28, 841.89)  # points, portrait
_WORD = re.compile(r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" yMax="([-\d.]+)">(.*?)</word>')
_PAGE_SIZE = re.compile(r"^Page\s+(\d+) size:\s+([\d.]+) x ([\d.]+) pts", re.M)


def to_pdf(files: list[Path], outdir: Path, profile: Path) -> list[Path]:
    """Convert every workbook in one LibreOffice run; the PDFs, in the same order."""
    outdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["soffice", f"-env:UserInstallation={profile.resolve().as_uri()}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(outdir), *map(str, files)],
                   check=True, capture_output=True, timeout=180)
    pdfs = [outdir / f"{f.stem}.pdf" for f in files]
    missing = [p.name for p in pdfs if not p.exists()]
    assert not missing, f"LibreOffice wrote no {missing}"
    return pdfs


def page_sizes(pdf: Path) -> list[tuple[float, float]]:
    """(width, height) in points of every page, from the PDF's page boxes."""
    out = subprocess.run(["pdfinfo", "-f", "1", "-l", "9999", str(pdf)], check=True, capture_output=True,
                         text=True).stdout
    return [(float(w), float(h)) for _, w, h in _PAGE_SIZE.findall(out)]


def is_a4(size: tuple[float, float], *, landscape: bool) -> bool:
    want = (A4[1], A4[0]) if landscape else A4
    return all(abs(got - w) < 1.5 for got, w in zip(size, want, strict=True))


def page_texts(pdf: Path) -> list[str]:
    """Each page's text as the PDF draws it (``pdftotext -raw``: a wrapped cell's lines together)."""
    out = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True,
                         text=True).stdout
    return out.split("\f")[:-1]


def flat(text: object) -> str:
    """Text without any whitespace: a wrapped line's breaks and the spaces of a layout removed."""
    return re.sub(r"\s+", "", str(text))


@dataclass(frozen=True)
class Word:
    x0: float
    y0: float
    x1: float
    y1: float
    text: str

    def overlaps(self, other: Word, slack: float = 0.5) -> bool:
        return (min(self.x1, other.x1) - max(self.x0, other.x0) > slack
                and min(self.y1, other.y1) - max(self.y0, other.y0) > slack)


def page_words(pdf: Path) -> list[list[Word]]:
    """Every page's words with their boxes (``pdftotext -bbox``)."""
    out = subprocess.run(["pdftotext", "-bbox", "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True,
                         text=True).stdout
    return [[Word(float(a), float(b), float(c), float(d), html.unescape(t)) for a, b, c, d, t in _WORD.findall(page)]
            for page in out.split("<page ")[1:]]


def overlapping(words: list[Word]) -> list[tuple[Word, Word]]:
    """Pairs of words drawn over each other: text that ran out of its cell into the next."""
    ordered = sorted(words, key=lambda w: w.x0)
    found = []
    for i, word in enumerate(ordered):
        for other in ordered[i + 1:]:
            if other.x0 >= word.x1:
                break
            if word.overlaps(other):
                found.append((word, other))
    return found


def to_png(pdf: Path, out: Path, *, dpi: int = 60) -> Path:
    """Page 1 as a PNG (``pdftoppm -r DPI -png -f 1 -l 1 -singlefile``)."""
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                    str(out.with_suffix(""))], check=True, capture_output=True, timeout=60)
    return out

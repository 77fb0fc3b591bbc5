"""Page 1 of each workbook the system writes, as a PNG in docs/printing/ (not part of the test run).

Run by hand from the repository's root, with LibreOffice, poppler and the CJK fonts installed
(``apt-get install -y --no-install-recommends libreoffice-calc-nogui fonts-noto-cjk poppler-utils``)::

    .venv/bin/python -m tests.printing.render_pictures

It builds the same world as the printing tests (``world.py``) in a temporary folder, writes the
score sheet, the progress workbook and the case list, converts them with
``soffice --headless --convert-to pdf`` and renders page 1 of each with
``pdftoppm -r 60 -png -f 1 -l 1``.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from workflow.config import REPO_ROOT

from .rendering import MISSING, SKIP_REASON, to_png
from .world import NAMES, print_all

OUT = REPO_ROOT / "docs" / "printing"


def main() -> int:
    if MISSING:
        sys.stderr.write(SKIP_REASON + "\n")
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _, pdfs = print_all(Path(tmp))
        for name, pdf in zip(NAMES, pdfs, strict=True):
            sys.stdout.write(f"{to_png(pdf, OUT / f'{name}.png')}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The notifications package stands alone: it never imports ``workflow``."""
from __future__ import annotations

import re
from pathlib import Path

import notifications

SOURCE = Path(notifications.__file__).parent
FORBIDDEN = re.compile(r"^\s*(import\s+workflow\b|from\s+workflow\b)", re.MULTILINE)


def test_package_source_never_imports_workflow() -> None:
    files = list(SOURCE.rglob("*.py"))
    assert len(files) >= 6
    offenders = [str(f) for f in files if FORBIDDEN.search(f.read_text(encoding="utf-8")) or "workflow." in f.read_text(encoding="utf-8")]
    assert offenders == []


def test_templates_ship_with_the_package() -> None:
    names = {p.name for p in (SOURCE / "templates").iterdir()}
    for kind in notifications.KINDS:
        assert {f"{kind}.subject.txt", f"{kind}.txt", f"{kind}.html"} <= names

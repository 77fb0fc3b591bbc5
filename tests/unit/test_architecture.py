"""The shape of the code, checked: each layer imports only what it may, and no function
grows past what a reader takes in at once.

Layers, inside out: ``domain`` (the rules; imports nothing of ours but itself),
``service`` (uses the domain and the ports in ``service/ports.py``; never an adapter),
``adapters`` (implement the ports), and the outer layer that wires and serves them
(``bootstrap``, ``api``, ``cli``, ``files``, ``simulate``).
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
WORKFLOW = SRC / "workflow"
MAX_FUNCTION_LINES = 60


def _module_name(path: Path, src: Path) -> str:
    return ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path, src: Path = SRC) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    name = _module_name(path, src)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # "from .. import adapters" names a module too
                yield node.lineno, f"{module}.{alias.name}"


def forbidden_imports(layer: str, banned: tuple[str, ...], src: Path = SRC) -> list[str]:
    found = []
    for path in sorted((src / "workflow" / layer).rglob("*.py")):
        for line, module in imports_of(path, src):
            if any(module == b or module.startswith(b + ".") for b in banned):
                found.append(f"{path.relative_to(src)}:{line} imports {module}")
    return found


def test_no_service_module_imports_an_adapter_or_an_outer_layer() -> None:
    banned = ("workflow.adapters", "workflow.api", "workflow.cli", "workflow.bootstrap", "workflow.files",
              "workflow.simulate", "sqlalchemy", "sqlmodel", "openpyxl", "fastapi")
    assert forbidden_imports("service", banned) == []


def test_the_domain_imports_nothing_outside_itself() -> None:
    banned = ("workflow.service", "workflow.adapters", "workflow.api", "workflow.cli", "workflow.bootstrap",
              "workflow.clock", "workflow.files", "workflow.simulate", "sqlalchemy", "sqlmodel", "fastapi")
    assert forbidden_imports("domain", banned) == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself: relative imports of the adapters from a service module are caught."""
    service = tmp_path / "workflow" / "service"
    service.mkdir(parents=True)
    (service / "probe.py").write_text("from ..adapters.db import store\nfrom .. import adapters\n"
                                      "from .ports import Storage\n", encoding="utf-8")
    found = forbidden_imports("service", ("workflow.adapters",), src=tmp_path)
    assert [f.split(" imports ")[1] for f in found] == [
        "workflow.adapters.db", "workflow.adapters.db.store", "workflow.adapters"]


def long_functions(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} is {lines} lines")
    return found


@pytest.mark.parametrize("package", ["workflow", "notifications"])
def test_no_function_is_longer_than_sixty_lines(package: str) -> None:
    assert long_functions(SRC / package) == []

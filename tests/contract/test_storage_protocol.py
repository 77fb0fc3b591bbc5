"""The in-memory store is a ``Storage``: every member of every port, with the port's signature
(checked here at run time), and ``mypy`` accepts it where a ``Storage`` is wanted."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import workflow.adapters.memory as memory
from workflow.service import ports

from .worlds import directory

MEMORY = memory.MemoryDatabase()
PAIRS: list[tuple[type, Any]] = [
    (ports.Storage, memory.MemoryDatabase),
    (ports.CaseStore, memory.MemoryCaseStore),
    (ports.UnitOfWorkContext, type(MEMORY.unit_of_work())),
    (ports.EventSource, type(MEMORY.within("/shanxi/"))),
    (ports.DirectoryStore, memory.MemoryDirectory),
    (ports.TokenStore, memory.MemoryTokens),
    (ports.RoundStore, memory.MemoryRounds),
    (ports.OutboxStore, memory.MemoryOutbox),
    (ports.OversightStore, memory.MemoryOversight),
    (ports.DutyStore, memory.MemoryDuties),
    (ports.SimulationStore, memory.MemorySimulations),
    (ports.ReadModels, memory.MemoryReadModels),
]
# What the check below gives mypy: the assignments that fail to type-check if the memory store
# falls short of a port (a member missing, a parameter renamed, a return type that does not fit).
TYPED = '''
from workflow.adapters.memory import MemoryDatabase
from workflow.service.ports import CaseStore, EventSource, ReadModels, Storage, UnitOfWorkContext

storage: Storage = MemoryDatabase()
source: EventSource = MemoryDatabase().within("/shanxi/")
context: UnitOfWorkContext = MemoryDatabase().reader()
read: ReadModels = storage.read
with MemoryDatabase().unit_of_work(core=True) as uow:
    store: CaseStore = uow
'''


def members(protocol: type) -> dict[str, Any]:
    """The protocol's members (its own and its bases'), by name."""
    found: dict[str, Any] = {}
    for cls in reversed(protocol.__mro__):
        if cls in (object,) or cls.__module__ == "typing":
            continue
        found.update({k: v for k, v in vars(cls).items() if not k.startswith("_") or k in ("__enter__", "__exit__")})
    return found


def parameters(function: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize(("protocol", "implementation"), PAIRS, ids=[p.__name__ for p, _ in PAIRS])
def test_every_member_of_the_port_with_its_signature(protocol: type, implementation: type) -> None:
    wanted = members(protocol)
    assert wanted, protocol
    for name, member in wanted.items():
        have = inspect.getattr_static(implementation, name, None)
        assert have is not None, f"{implementation.__name__} has no {name} ({protocol.__name__})"
        if isinstance(member, property):
            assert isinstance(have, property), f"{implementation.__name__}.{name} is not a property"
        elif callable(member):
            assert callable(have), f"{implementation.__name__}.{name} is not a method"
            assert parameters(have) == parameters(member), f"{implementation.__name__}.{name}"


def test_mypy_accepts_the_memory_store_as_a_storage(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    check = tmp_path / "check_memory_storage.py"
    check.write_text(TYPED, encoding="utf-8")
    out, err, status = api.run([str(check), memory.__file__, "--cache-dir", str(tmp_path / "mypy-cache"),
                                "--no-error-summary", "--show-error-codes"])
    assert status == 0, out + err
    assert out.strip() == ""


def test_prepare_keeps_the_data_and_describe_says_where_it_is(storage: ports.Storage, backend: str) -> None:
    units = directory(storage).units
    storage.prepare()
    storage.prepare()
    assert sorted(u.id for u in storage.directory.units()) == sorted(units.values())
    where = storage.describe()
    assert where == "memory" if backend == "memory" else where.split(":")[0] in ("sqlite", "postgresql+psycopg")

"""Cell kinds are plug-ins: a throwaway kind, registered from here, lists, shards and runs a
real cell (the real probe in a plain process) without any other module naming it."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import cli, kinds, shard
from harness.environments.base import Resources, Setup, cell_variables
from harness.environments.process import LocalProcessEnvironment
from harness.kinds.base import STR, Cell, Entry, Kind, entry_of, entry_schema
from harness.matrix import load, validate


@dataclass(frozen=True, kw_only=True)
class EchoEntry(Entry):
    """The throwaway kind's entry, with an option of its own."""

    python: str
    flavour: str = "plain"


class EchoEnvironment(LocalProcessEnvironment):
    """The probe in a plain process with an allowlisted environment (no isolation: this is a
    test of the plumbing, the package has no library to hide)."""

    def variables(self, home: str, tmp: str) -> dict[str, str]:
        return {**cell_variables(home, tmp), "ECHO_FLAVOUR": self.flavour}

    flavour = ""


@dataclass(frozen=True, kw_only=True)
class EchoResources(Resources):
    root: Path
    uv: str

    def environment(self, cell: Cell) -> EchoEnvironment:
        entry = entry_of(cell, EchoEntry)
        env = EchoEnvironment(python=Path(entry.python), run_root=self.root, uv=self.uv,
                              cell_id=cell.id)
        env.flavour = entry.flavour
        return env


class EchoKind(Kind):
    name = "echo"
    entry = EchoEntry
    schema = entry_schema(["python"], {"python": STR, "flavour": STR})
    def __init__(self) -> None:
        self.prepared: list[str] = []

    def cells(self, entry: EchoEntry, timeout: float) -> list[Cell]:
        return [Cell(id=entry.id or f"echo-{entry.flavour}", kind=self.name, entry=entry,
                     timeout=timeout, aliases=(f"{entry.flavour}-echo",))]

    def fields(self, cell: Cell) -> Mapping[str, str | None]:
        entry = entry_of(cell, EchoEntry)
        return {"python": entry.python, "flavour": entry.flavour}

    def runner(self, cell: Cell) -> str:
        return "echo-runner"

    def prepare(self, setup: Setup, cells: Sequence[Cell]) -> Resources:
        self.prepared += [c.id for c in cells]
        return EchoResources(root=setup.root, uv=setup.uv)


@pytest.fixture
def echo() -> Iterator[EchoKind]:
    with kinds.registered(EchoKind()) as kind:
        assert isinstance(kind, EchoKind)
        yield kind
    assert "echo" not in {k.name for k in kinds.all_kinds()}


def digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def pure_wheel(directory: Path) -> Path:
    """A real pure-Python wheel of ``throwaway`` 1.0 with a correct RECORD."""
    dist = "throwaway-1.0.dist-info"
    files = {"throwaway/__init__.py": b'__version__ = "1.0"\n',
             f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: throwaway\nVersion: 1.0\n",
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n"}
    record = [f"{n},sha256={digest(d)},{len(d)}" for n, d in files.items()]
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = directory / "throwaway-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def echo_matrix(tmp_path: Path) -> Path:
    path = tmp_path / "matrix.yaml"
    path.write_text(
        "package: {distribution: throwaway, import: throwaway, version_from: [__version__],\n"
        "          checks: [{name: big, expr: '2**70 + throwaway.__version__.count(\".\")',"
        " expected: 1180591620717411303425}]}\n"
        "environments:\n"
        "  echo:\n"
        f"    - {{python: {json.dumps(sys.executable)}, flavour: sour}}\n"
        f"    - {{python: {json.dumps(sys.executable)}}}\n")
    return path


def test_a_throwaway_kind_is_a_matrix_key_with_its_own_schema(echo: EchoKind,
                                                              tmp_path: Path) -> None:
    data = {"package": {"distribution": "d", "import": "d"},
            "environments": {"echo": [{"python": "x", "colour": "red"}]}}
    assert validate(data, "m.yaml") == ["m.yaml: environments.echo[0]: unknown key 'colour' "
                                        "(known: python, flavour, id, timeout)"]
    m = load(echo_matrix(tmp_path))
    assert m.entries("echo") == (EchoEntry(python=sys.executable, flavour="sour"),
                                 EchoEntry(python=sys.executable))


def test_unregistered_kinds_are_unknown_keys() -> None:
    data = {"package": {"distribution": "d", "import": "d"},
            "environments": {"echo": [{"python": "x"}]}}
    assert any("unknown key" in e for e in validate(data, "m.yaml"))


def test_a_throwaway_kind_lists_and_shards(echo: EchoKind, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    matrix = str(echo_matrix(tmp_path))
    assert cli.main(["--matrix", matrix, "--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"echo-sour\techo\t{sys.executable}  (also: sour-echo)",
        f"echo-plain\techo\t{sys.executable}  (also: plain-echo)"]
    assert cli.main(["--matrix", matrix, "--list", "--format", "json"]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert jobs == [{"id": "echo-sour", "kind": "echo", "flavour": "sour",
                     "python": sys.executable, "runner": "echo-runner", "shard": "1/2"},
                    {"id": "echo-plain", "kind": "echo", "flavour": "plain",
                     "python": sys.executable, "runner": "echo-runner", "shard": "2/2"}]
    assert cli.main(["--matrix", matrix, "--list", "--shard", "2/2"]) == 0
    assert capsys.readouterr().out.startswith("echo-plain\techo\t")
    everything = [c.id for c in shard.select(
        cli.load_cells(cli.parse_options(["--matrix", matrix]))[1], shard.WHOLE)]
    assert everything == ["echo-sour", "echo-plain"]


def test_a_throwaway_kind_runs_a_real_cell(echo: EchoKind, tmp_path: Path) -> None:
    wheel = pure_wheel(tmp_path)
    reports = tmp_path / "reports"
    code = cli.main([str(wheel), "--matrix", str(echo_matrix(tmp_path)), "--shard", "1/2",
                     "--report-dir", str(reports)])
    report: dict[str, Any] = json.loads((reports / "smoke.json").read_text())
    assert [(c["id"], c["kind"], c["verdict"]) for c in report["cells"]] == [
        ("echo-sour", "echo", "PASS")], report["cells"][0]["reason"]
    assert code == 0
    assert echo.prepared == ["echo-sour"]  # the kind's own prepare made its environment
    cell = report["cells"][0]
    assert cell["environment"]["ECHO_FLAVOUR"] == "sour"  # the entry's option reached it
    assert {c["name"]: c["status"] for c in cell["checks"]}["big"] == "pass"

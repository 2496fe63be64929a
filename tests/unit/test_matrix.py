"""matrix.yaml: schema, one-line errors, parsing, cells and selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness import cells, matrix, schema
from harness.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def minimal(**package: object) -> dict[str, object]:
    return {"package": {"distribution": "q_kangaroo", "import": "q_kangaroo", **package},
            "environments": {"venv": [{"python": "3.12"}]}}


def test_committed_schema_is_the_generated_one() -> None:
    assert schema.SCHEMA_PATH.read_text() == schema.render()
    assert json.loads(schema.render())["required"] == ["package", "environments"]


def test_default_matrix_loads_with_ten_cells() -> None:
    m = matrix.load(ROOT / "matrix.yaml")
    ids = [c.id for c in cells.expand(m)]
    assert ids[:5] == [f"venv-py3.{n}" for n in (9, 10, 11, 12, 13)]
    assert len([i for i in ids if i.startswith("docker-")]) >= 5
    assert m.package.bundled_libraries == ("gmp",)
    assert "MINGW_BIN" in m.package.absent_env
    pg = next(c for c in m.package.checks if c.name == "partition_gf")
    assert "1000" in pg.expr


@pytest.mark.parametrize(("data", "expected"), [
    ({"environments": {}}, "(top level): 'package' is a required property"),
    (minimal(checks=[{"name": "x", "expr": "1"}]),
     "package.checks[0]: give exactly one of 'expected' or 'expected_expr'"),
    (minimal(version_from="__version__"), "package.version_from: '__version__' is not of type"),
    ({**minimal(), "environments": {"venv": [{"pyhton": "3.9"}]}},
     "environments.venv[0]: unknown key 'pyhton' (did you mean 'python'?)"),
    ({**minimal(), "defaults": {"timeout": 0}}, "defaults.timeout: 0 is less than or equal"),
])
def test_each_error_is_one_line_naming_file_and_key(tmp_path: Path, data: object,
                                                     expected: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(InputError) as err:
        matrix.load(path)
    lines = str(err.value).splitlines()
    assert any(line.startswith(f"{path}: {expected}") for line in lines), lines
    assert all(line.startswith(str(path)) for line in lines)


def test_every_error_is_listed(tmp_path: Path) -> None:
    data = {"package": {"import": 3}, "environments": {"venv": [{}]}}
    with pytest.raises(InputError) as err:
        matrix.load(write(tmp_path, data))
    assert len(str(err.value).splitlines()) == 3  # distribution, import type, python


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("package: [\n")
    with pytest.raises(InputError, match=r"bad.yaml: line \d+: not valid YAML"):
        matrix.load(bad)
    with pytest.raises(InputError, match=r"cannot read matrix"):
        matrix.load(tmp_path / "nope.yaml")


def test_reserved_and_repeated_check_names(tmp_path: Path) -> None:
    data = minimal(checks=[{"name": "import", "expr": "1", "expected": 1}])
    with pytest.raises(InputError, match=r"checks\[0\]\.name: 'import' is reserved"):
        matrix.load(write(tmp_path, data))


def test_cell_ids_aliases_and_selection(tmp_path: Path) -> None:
    data = minimal()
    data["environments"] = {"venv": [{"python": "3.9"}, {"python": "/opt/py/bin/python3.11"}],
                            "container": [{"image": "debian11-py3.9"},
                                          {"image": "python:3.12-slim", "id": "slim"}]}
    m = matrix.load(write(tmp_path, data))
    all_cells = cells.expand(m)
    assert [c.id for c in all_cells] == ["venv-py3.9", "venv-python3.11",
                                         "docker-debian11-py3.9", "slim"]
    assert [c.id for c in cells.select(all_cells, ["py3.9-*"])] == [
        "venv-py3.9", "docker-debian11-py3.9"]
    assert [c.id for c in cells.select(all_cells, ["docker-*,slim"])] == [
        "docker-debian11-py3.9", "slim"]
    with pytest.raises(InputError, match=r"--select 'py2\.7' matches no cell; cells are: "):
        cells.select(all_cells, ["py2.7"])


def test_duplicate_cell_ids_are_refused(tmp_path: Path) -> None:
    data = minimal()
    data["environments"] = {"venv": [{"python": "3.9"}, {"python": "3.9"}]}
    with pytest.raises(InputError, match=r"two entries make the same cell id 'venv-py3\.9'"):
        cells.expand(matrix.load(write(tmp_path, data)))


def test_check_expressions_must_compile(tmp_path: Path) -> None:
    data = minimal(checks=[{"name": "pg", "expr": "q_kangaroo.partition_gf(1000",
                            "expected": 1}])
    with pytest.raises(InputError, match=r"package\.checks\[0\]\.expr: not a Python expression"):
        matrix.load(write(tmp_path, data))


def test_expected_must_be_plain_data(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(minimal()).replace(
        "import: q_kangaroo", "import: q_kangaroo\n  checks: [{name: d, expr: '1', "
        "expected: 2024-01-01}]"))
    with pytest.raises(InputError, match=r"checks\[0\]\.expected: .*use plain YAML values"):
        matrix.load(path)


@pytest.mark.parametrize("name", ["exit", "provenance", "tags", "import"])
def test_built_in_check_names_are_reserved(tmp_path: Path, name: str) -> None:
    data = minimal(checks=[{"name": name, "expr": "1", "expected": 1}])
    with pytest.raises(InputError, match="is reserved"):
        matrix.load(write(tmp_path, data))


def test_the_reference_module_ships_beside_the_matrix(tmp_path: Path) -> None:
    m = matrix.load(ROOT / "matrix.yaml")
    assert m.package.reference is not None
    assert m.package.reference.path == ROOT / "q_kangaroo_reference.py"
    assert "def partition_numbers" in m.package.reference.source
    (tmp_path / "ref.py").write_text("def answer():\n    return 42\n")
    loaded = matrix.load(write(tmp_path, minimal(reference="ref.py")))
    assert loaded.package.reference is not None
    assert loaded.package.reference.to_probe() == {"path": "ref.py", "source": (
        "def answer():\n    return 42\n")}


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.py", None, "package.reference: cannot read"),
    ("broken.py", "def (:\n", "package.reference: "),
])
def test_a_bad_reference_is_one_line_input_error(tmp_path: Path, name: str,
                                                 content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(InputError) as err:
        matrix.load(write(tmp_path, minimal(reference=name)))
    assert len(str(err.value).splitlines()) == 1
    assert message in str(err.value) and name in str(err.value)


def test_budgets_default_and_from_the_matrix(tmp_path: Path) -> None:
    default = matrix.load(write(tmp_path, minimal()))
    assert (default.package.import_budget, default.package.check_budget) == (15.0, 120.0)
    data = {**minimal(checks=[{"name": "slow", "expr": "1", "expected": 1, "timeout": 90}]),
            "defaults": {"budgets": {"import": 5}}}
    pkg = matrix.load(write(tmp_path, data)).package
    assert pkg.step_budgets() == {"import": 5.0, "slow": 90.0}

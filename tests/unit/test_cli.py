"""Bad input: one clear line, exit 2, nothing run; exit code policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli
from tests.conftest import default_matrix_data


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("matrix: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["/no/such.whl"], "no such file or directory"),
    (["--select", "py2.7-*", "/no/such.whl"], "matches no cell"),
    ([], "no wheel given"),
    (["--timeout", "-5", "x.whl"], "--timeout -5: give a finite number of seconds above 0"),
    (["--timeout", "nan", "x.whl"], "--timeout nan: give a finite number of seconds above 0"),
    (["--timeout", "inf", "x.whl"], "--timeout inf: give a finite number of seconds above 0"),
    (["--jobs", "0", "x.whl"], "--jobs 0: give at least 1"),
    (["--select", "", "x.whl"], "--select '': an empty pattern"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], args: list[str],
                                         expected: str) -> None:
    assert cli.main(args) == 2
    assert expected in one_error_line(capsys)


def test_not_a_wheel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "q_kangaroo-1.0.0-cp39-abi3-manylinux_2_17_x86_64.whl"
    bogus.write_text("not a zip")
    assert cli.main([str(bogus), "--select", "venv-py3.12"]) == 2
    assert "not a readable zip archive" in one_error_line(capsys)


def test_directory_without_a_matching_wheel(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "other-1.0-py3-none-any.whl").write_text("")
    assert cli.main([str(tmp_path)]) == 2
    assert "no wheel or sdist of q_kangaroo" in one_error_line(capsys)


def test_a_release_of_only_an_sdist_asks_for_wheels(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "q_kangaroo-1.0.0.tar.gz").write_text("")
    assert cli.main([str(tmp_path)]) == 2
    assert "no wheel of q_kangaroo 1.0.0 (only q_kangaroo-1.0.0.tar.gz)" in \
        one_error_line(capsys)


def test_a_release_directory_is_one_version_of_the_package_others_ignored(
        tmp_path: Path) -> None:
    from harness import matrix, wheel

    package = matrix.load(cli.DEFAULT_MATRIX).package
    names = ["q_kangaroo-0.9.0-cp39-abi3-manylinux_2_17_x86_64.whl",
             "q_kangaroo-1.0.0-cp39-abi3-win_amd64.whl",
             "q_kangaroo-1.0.0-cp39-abi3-musllinux_1_2_x86_64.whl",
             "q_kangaroo-1.0.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
             "q_kangaroo-1.1.0rc1-cp39-abi3-manylinux_2_17_x86_64.whl",
             "q_kangaroo-1.0.0.tar.gz", "other-1.0.0-py3-none-any.whl", "notes.txt"]
    for name in names:
        (tmp_path / name).write_text("")
    found = wheel.resolve([tmp_path], package)
    assert str(found.version) == "1.0.0"
    assert [d.filename for d in found.wheels] == sorted(names[1:4])
    assert [d.filename for d in found.sdists] == ["q_kangaroo-1.0.0.tar.gz"]
    assert sorted(i.path.name for i in found.ignored) == sorted(
        [names[0], names[4], "other-1.0.0-py3-none-any.whl", "notes.txt"])
    assert str(wheel.resolve([tmp_path], package, prereleases=True).version) == "1.1.0rc1"
    assert len(wheel.resolve([tmp_path], package, version="0.9.0").wheels) == 1
    files = [tmp_path / names[2], tmp_path / names[3]]
    assert [d.filename for d in wheel.resolve(files, package).wheels] == sorted(names[2:4])


def test_the_release_version_must_exist(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "q_kangaroo-1.0.0-cp39-abi3-manylinux_2_17_x86_64.whl").write_text("")
    assert cli.main([str(tmp_path), "--release-version", "2.0"]) == 2
    assert "no file of version 2.0; available: 1.0.0" in one_error_line(capsys)


def test_unwritable_report_dir_is_refused_before_running(
        tmp_path: Path, synthetic_wheel: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert cli.main([str(synthetic_wheel), "--report-dir", str(blocker)]) == 2
    assert "cannot write reports there" in one_error_line(capsys)


def test_unknown_recipe_name_is_a_matrix_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    data = default_matrix_data()
    data["environments"] = {"container": [{"image": "debian10-py3.7"}]}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["--matrix", str(path), "x.whl"]) == 2
    assert "image 'debian10-py3.7' is not a recipe under images/" in one_error_line(capsys)

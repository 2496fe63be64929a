"""Release sets from synthetic file names: version choice, ignored files, and the file pip would
pick per cell (abi3 floors, version-specific beats abi3, musl rules, old glibc, PyPy)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from harness import release
from harness.errors import InputError

ABI3 = "q_kangaroo-1.0.0-cp310-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
CP312 = "q_kangaroo-1.0.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
CP313 = "q_kangaroo-1.0.0-cp313-cp313-manylinux_2_28_x86_64.whl"
CP39 = "q_kangaroo-1.0.0-cp39-cp39-manylinux_2_17_x86_64.whl"
MUSL = "q_kangaroo-1.0.0-cp39-abi3-musllinux_1_2_x86_64.whl"
PYPY = "q_kangaroo-1.0.0-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl"


def facts(minor: int, *, glibc: str = "2.36", **extra: Any) -> dict[str, Any]:
    return {"version": f"3.{minor}.1", "version_info": [3, minor, 1],
            "implementation": "cpython", "abiflags": "", "machine": "x86_64",
            "glibc": glibc, "libc": f"glibc {glibc}" if glibc else "", **extra}


MUSL_FACTS = facts(12, glibc="", musl="1.2.4")
PYPY_FACTS = {**facts(10), "implementation": "pypy", "soabi": "pypy310-pp73-x86_64-linux-gnu"}


def write_sdist(path: Path, *, backend: str | None = "maturin",
                requires_python: str = ">=3.9") -> Path:
    top = path.name.removesuffix(".tar.gz")
    files = {"PKG-INFO": f"Metadata-Version: 2.1\nName: q_kangaroo\nVersion: 1.0.0\n"
                         f"Requires-Python: {requires_python}\n",
             "Cargo.toml": "[package]\nname = 'q_kangaroo'\n", "src/lib.rs": ""}
    if backend:
        files["pyproject.toml"] = (f"[build-system]\nrequires = ['{backend}']\n"
                                   f"build-backend = '{backend}'\n")
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def make_set(tmp_path: Path, *names: str, sdist: bool = True, **kw: Any) -> release.ReleaseSet:
    for name in names:
        (tmp_path / name).write_bytes(b"")
    if sdist:
        write_sdist(tmp_path / "q_kangaroo-1.0.0.tar.gz")
    return release.collect([tmp_path], "q-kangaroo", **kw)


@pytest.mark.parametrize(("minor", "expected"), [
    (9, CP39), (10, ABI3), (11, ABI3), (12, CP312), (13, CP313)])
def test_mixed_abi3_and_version_specific(tmp_path: Path, minor: int, expected: str) -> None:
    rs = make_set(tmp_path, ABI3, CP312, CP313, CP39)
    chosen = release.pick(rs, facts(minor))
    assert chosen.wheel is not None and chosen.wheel.filename == expected
    assert chosen.covered and chosen.fallback == ""


def test_version_specific_beats_abi3_and_tag_is_reported(tmp_path: Path) -> None:
    rs = make_set(tmp_path, ABI3, CP313)
    chosen = release.pick(rs, facts(13))
    assert chosen.wheel is not None and chosen.wheel.filename == CP313
    assert str(chosen.tag) == "cp313-cp313-manylinux_2_28_x86_64"


def test_abi3_floor_is_respected(tmp_path: Path) -> None:
    rs = make_set(tmp_path, ABI3)  # cp310-abi3: not for 3.9
    assert not release.pick(rs, facts(9)).covered
    assert release.pick(rs, facts(11)).covered


def test_glibc_too_old_is_uncovered_with_sdist_fallback(tmp_path: Path) -> None:
    rs = make_set(tmp_path, CP313)  # manylinux_2_28 on glibc 2.17
    chosen = release.pick(rs, facts(13, glibc="2.17"))
    assert not chosen.covered
    assert "q_kangaroo-1.0.0.tar.gz" in chosen.fallback
    assert "Rust toolchain" in chosen.fallback and "maturin" in chosen.fallback
    assert release.pick(rs, facts(13, glibc="2.28")).covered


def test_musl_cell_takes_only_musllinux(tmp_path: Path) -> None:
    rs = make_set(tmp_path, ABI3, MUSL)
    chosen = release.pick(rs, MUSL_FACTS)
    assert chosen.wheel is not None and chosen.wheel.filename == MUSL
    assert release.pick(rs, facts(12)).wheel.filename == ABI3  # type: ignore[union-attr]
    old_musl = release.pick(rs, {**MUSL_FACTS, "musl": "1.1.24"})
    assert not old_musl.covered  # musllinux_1_2 needs musl >= 1.2
    libc_string = release.pick(rs, {**facts(12, glibc=""), "libc": "musl 1.2.3"})
    assert libc_string.wheel is not None and libc_string.wheel.filename == MUSL


def test_glibc_cell_never_takes_musllinux(tmp_path: Path) -> None:
    rs = make_set(tmp_path, MUSL)
    assert not release.pick(rs, facts(12)).covered


def test_pypy(tmp_path: Path) -> None:
    rs = make_set(tmp_path, ABI3, PYPY)
    chosen = release.pick(rs, PYPY_FACTS)
    assert chosen.wheel is not None and chosen.wheel.filename == PYPY
    (tmp_path / "abi3only").mkdir()
    only_abi3 = make_set(tmp_path / "abi3only", ABI3)
    assert not release.pick(only_abi3, PYPY_FACTS).covered  # abi3 is CPython's


def test_no_sdist_means_install_fails(tmp_path: Path) -> None:
    rs = make_set(tmp_path, CP313, sdist=False)
    chosen = release.pick(rs, facts(9))
    assert not chosen.covered and "fails" in chosen.fallback and "no sdist" in chosen.fallback


def test_sdist_excluded_by_requires_python(tmp_path: Path) -> None:
    (tmp_path / CP313).write_bytes(b"")
    write_sdist(tmp_path / "q_kangaroo-1.0.0.tar.gz", requires_python=">=3.10")
    rs = release.collect([tmp_path], "q_kangaroo")
    outside = release.pick(rs, facts(9))  # pip skips the whole release there
    assert not outside.covered and outside.excluded == ">=3.10"
    assert "outside the release (Requires-Python >=3.10)" in outside.fallback
    assert release.pick(rs, facts(13)).covered


def test_pure_backend_needs_no_compiler(tmp_path: Path) -> None:
    sdist = write_sdist(tmp_path / "q_kangaroo-1.0.0.tar.gz", backend="hatchling.build")
    contents = release.read_sdist(sdist)
    assert contents.backend == "hatchling.build" and "Cargo.toml" in contents.files
    assert contents.pkg_info["Version"] == "1.0.0"
    assert "no compiler" in release.build_needs(contents)


def test_higher_build_tag_wins(tmp_path: Path) -> None:
    rs = make_set(tmp_path, CP313, CP313.replace("1.0.0-", "1.0.0-2-"))
    assert release.pick(rs, facts(13)).wheel.build == (2, "")  # type: ignore[union-attr]


def test_newest_final_version_and_ignored_files(tmp_path: Path) -> None:
    names = [CP313, CP313.replace("1.0.0", "0.9.0"), CP313.replace("1.0.0", "1.1.0rc1"),
             "other_pkg-5.0-py3-none-any.whl", "notes.txt", "q_kangaroo-bad.whl"]
    rs = make_set(tmp_path, *names)
    assert str(rs.version) == "1.0.0"
    assert [w.filename for w in rs.wheels] == [CP313]
    assert rs.sdist is not None and rs.sdist.filename == "q_kangaroo-1.0.0.tar.gz"
    reasons = {i.path.name: i.reason for i in rs.ignored}
    assert set(reasons) == set(names) - {CP313}
    assert "another package" in reasons["other_pkg-5.0-py3-none-any.whl"]
    assert "0.9.0" in reasons[CP313.replace("1.0.0", "0.9.0")]
    assert "pre-" in reasons[CP313.replace("1.0.0", "1.1.0rc1")]
    assert "neither a wheel" in reasons["notes.txt"]
    assert "not a valid" in reasons["q_kangaroo-bad.whl"]


def test_version_choice(tmp_path: Path) -> None:
    for name in (CP313, CP313.replace("1.0.0", "0.9.0"), CP313.replace("1.0.0", "1.1.0rc1")):
        (tmp_path / name).write_bytes(b"")
    assert str(release.collect([tmp_path], "q_kangaroo", version="0.9").version) == "0.9.0"
    assert str(release.collect([tmp_path], "q_kangaroo", prereleases=True).version) == "1.1.0rc1"
    assert str(release.collect([tmp_path], "q_kangaroo", version="1.1.0rc1").version) \
        == "1.1.0rc1"
    with pytest.raises(InputError, match=r"no file of version 2\.0; available: 1\.1\.0rc1"):
        release.collect([tmp_path], "q_kangaroo", version="2.0")
    with pytest.raises(InputError, match="not a version"):
        release.collect([tmp_path], "q_kangaroo", version="one")


def test_only_prereleases_need_asking(tmp_path: Path) -> None:
    (tmp_path / CP313.replace("1.0.0", "1.0.0.dev3")).write_bytes(b"")
    with pytest.raises(InputError, match="only pre-/dev-releases"):
        release.collect([tmp_path], "q_kangaroo")


def test_several_files_and_missing_package(tmp_path: Path) -> None:
    a, b = tmp_path / CP313, tmp_path / CP39
    a.write_bytes(b"")
    b.write_bytes(b"")
    rs = release.collect([a, b], "Q.Kangaroo")  # PEP 503 normalisation
    assert {w.filename for w in rs.wheels} == {CP313, CP39} and rs.sdist is None
    with pytest.raises(InputError, match="no wheel or sdist of numpy"):
        release.collect([a], "numpy")
    with pytest.raises(InputError, match="no such file"):
        release.collect([tmp_path / "missing"], "q_kangaroo")

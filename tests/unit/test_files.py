"""Atomic, private files: run directories claimed before the reaper can see them, reports
through unique temporary files, one run at a time per report directory."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from harness import report, runner
from tests.unit.test_bad_input import big_run


def test_a_planted_symlink_at_the_old_temporary_name_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    reports = tmp_path / "reports"
    reports.mkdir()
    for name in ("smoke.json.tmp", "smoke.junit.xml.tmp", "smoke.md.tmp"):
        (reports / name).symlink_to(victim)
    info, results = big_run(2)
    report.write(reports, info, results)
    assert victim.read_text() == "untouched\n"
    assert json.loads((reports / "smoke.json").read_text())["cells"]
    assert not [p for p in reports.iterdir() if p.name.startswith(".smoke.json.")]


def test_two_runs_writing_one_report_directory_serialise(tmp_path: Path) -> None:
    info, results = big_run(50)
    failures: list[BaseException] = []

    def write_many() -> None:
        try:
            for _ in range(15):
                report.write(tmp_path, info, results)
        except BaseException as exc:  # collected for the assertion
            failures.append(exc)

    threads = [threading.Thread(target=write_many) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(json.loads((tmp_path / "smoke.json").read_text())["cells"]) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "smoke.json", "smoke.junit.xml", "smoke.md"]


def test_the_reaper_never_takes_a_run_directory_being_born(tmp_path: Path) -> None:
    """A reaper looping beside new run directories: every one is whole, with its owner."""
    parent = tmp_path / "parent"
    parent.mkdir(mode=0o700)
    stop = threading.Event()
    reaped: list[Path] = []

    def reap() -> None:
        while not stop.is_set():
            reaped.extend(runner.reap_temp_dirs(parent))

    reaper = threading.Thread(target=reap)
    reaper.start()
    try:
        claimed = [runner._claim(parent, f"id{i}") for i in range(200)]
    finally:
        stop.set()
        reaper.join()
    assert reaped == []
    for root in claimed:
        assert root.name.startswith("run-id")
        assert (root / "owner.pid").read_text() == str(os.getpid())


def test_a_yaml_alias_bomb_is_refused_in_one_line_before_expanding(tmp_path: Path) -> None:
    from harness import matrix
    from harness.errors import InputError

    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    bomb = tmp_path / "matrix.yaml"
    bomb.write_text("\n".join(levels) + "\n")
    with pytest.raises(InputError, match=r"anchors and aliases .* are not allowed"):
        matrix.load(bomb)


def test_an_unreadable_pyenv_root_is_not_there(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import interpreters

    locked = tmp_path / "pyenv"
    (locked / "versions" / "3.12.1" / "bin").mkdir(parents=True)
    monkeypatch.setenv("PYENV_ROOT", str(locked))
    assert interpreters._pyenv_bins() == [str(locked / "versions" / "3.12.1" / "bin")]
    monkeypatch.setattr(Path, "iterdir", lambda self: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", str(self))))
    assert interpreters._pyenv_bins() == []


def test_a_non_utf8_member_name_with_the_utf8_flag_is_one_line(synthetic_wheel: Path) -> None:
    import zipfile

    from harness import wheel
    from harness.errors import InputError

    with zipfile.ZipFile(synthetic_wheel, "a") as zf:
        zf.writestr("q_kangaroo/ab.py", b"x = 1\n")
    data = bytearray(synthetic_wheel.read_bytes())
    data[:] = data.replace(b"q_kangaroo/ab.py", b"q_kangaroo/\xff\xfe.py")
    for sig, flags, at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        k = data.find(sig)
        while k >= 0:
            if data[k + at:k + at + 16] == b"q_kangaroo/\xff\xfe.py":
                data[k + flags + 1] |= 0x08  # bit 11: the name is UTF-8
            k = data.find(sig, k + 4)
    synthetic_wheel.write_bytes(bytes(data))
    with pytest.raises(InputError, match="not valid UTF-8 although the archive says"):
        wheel.inspect(synthetic_wheel)


@pytest.mark.parametrize("member", ["../../evil.txt", "/etc/evil", "q_kangaroo/../../x.py",
                                    "C:/evil.dll", "..\\evil.py"])
def test_a_zip_slip_member_is_one_line_naming_it_and_an_audit_blocker(
        synthetic_wheel: Path, member: str) -> None:
    import zipfile

    from packaging.version import Version

    from harness import audit, release, wheel
    from harness.errors import InputError

    assert wheel.unsafe_member(["q_kangaroo/__init__.py", "q_kangaroo/a..b.py"]) is None
    with zipfile.ZipFile(synthetic_wheel, "a") as zf:
        zf.writestr(member, b"x")
    with pytest.raises(InputError) as caught:
        wheel.inspect(synthetic_wheel)
    assert repr(member) in str(caught.value) and "[unsafe-path]" in str(caught.value)
    assert "\n" not in str(caught.value)
    dist = release.classify(synthetic_wheel)
    assert isinstance(dist, release.Dist)
    [finding] = audit.audit_wheel(dist, Version("1.0.0"), audit.AuditOptions())
    assert (finding.code, finding.severity) == ("unsafe-path", "blocker")
    assert repr(member) in finding.message

"""Architectures and binfmt_misc registration (a fake /proc/sys/fs/binfmt_misc)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import arches, binfmt, emulation
from harness.errors import InputError

AARCH64 = arches.ARCHES["aarch64"]
RULE = (":qemu-aarch64:M::\\x7fELF\\x02:\\xff\\xff\\xff\\xff\\xff:"
        "/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF")


def test_unknown_arch_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(InputError) as err:
        arches.get("arm64", where="matrix.yaml: environments.container[0].arch")
    message = str(err.value)
    assert "\n" not in message
    assert "unknown architecture 'arm64'" in message and "aarch64" in message


def test_host_is_not_foreign() -> None:
    assert not arches.is_foreign(arches.host().name)
    assert not arches.is_foreign(None)
    assert arches.is_foreign("s390x" if arches.host().name != "s390x" else "aarch64")


class FakeKernel:
    """A binfmt_misc directory: ``register`` appends an entry as the kernel would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registered: list[str] = []

    def mount(self) -> None:
        (self.root / "register").write_text("")
        (self.root / "status").write_text("enabled\n")

    def entry(self, *, enabled: bool = True, flags: str = "OPF") -> None:
        (self.root / "qemu-aarch64").write_text(
            f"{'enabled' if enabled else 'disabled'}\ninterpreter /usr/libexec/qemu-binfmt/"
            f"aarch64-binfmt-P\nflags: {flags}\noffset 0\n")


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    root = tmp_path / "binfmt_misc"
    root.mkdir()
    rules = tmp_path / "binfmt.d"
    rules.mkdir()
    (rules / "qemu-aarch64.conf").write_text(RULE + "\n")
    monkeypatch.setattr(binfmt, "BINFMT_DIR", root)
    monkeypatch.setattr(binfmt, "RULES_DIR", rules)
    return FakeKernel(root)


def test_status_says_why_programs_cannot_run(kernel: FakeKernel) -> None:
    assert "not mounted" in (binfmt.status(AARCH64) or "")
    kernel.mount()
    assert "no binfmt_misc handler qemu-aarch64" in (binfmt.status(AARCH64) or "")
    kernel.entry(enabled=False)
    assert "disabled" in (binfmt.status(AARCH64) or "")
    kernel.entry(flags="OP")
    assert "lacks the F flag" in (binfmt.status(AARCH64) or "")
    kernel.entry()
    assert binfmt.status(AARCH64) is None


def test_not_root_gets_one_line_saying_how_to_register(
        kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel.mount()
    monkeypatch.setattr(binfmt, "_is_root", lambda: False)
    with pytest.raises(binfmt.BinfmtError) as err:
        binfmt.ensure(AARCH64)
    message = str(err.value)
    assert "\n" not in message
    assert "update-binfmts --enable qemu-aarch64" in message
    assert err.value.exit_code == 2


def test_root_registers_the_rule_qemu_user_static_ships(
        kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel.mount()
    monkeypatch.setattr(binfmt, "_is_root", lambda: True)
    written: list[str] = []
    original = Path.write_text

    def register(self: Path, text: str) -> int:
        original(self, text)
        if self.name == "register":
            written.append(text)
            kernel.entry()
        return len(text)

    monkeypatch.setattr(Path, "write_text", register)
    logged: list[str] = []
    binfmt.ensure(AARCH64, log=logged.append)
    assert written == [RULE]
    assert logged == ["registered the binfmt_misc handler qemu-aarch64 (qemu-user-static)"]


def test_root_without_qemu_and_no_way_to_install_it(
        kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel.mount()
    (binfmt.RULES_DIR / "qemu-aarch64.conf").unlink()
    monkeypatch.setattr(binfmt, "_is_root", lambda: True)
    monkeypatch.setattr(emulation.shutil, "which", lambda name: None)  # no apt-get
    with pytest.raises(binfmt.BinfmtError) as err:
        binfmt.ensure(AARCH64)
    assert "qemu-user-static is missing" in str(err.value)
    assert "\n" not in str(err.value)


# --- cells follow the release ------------------------------------------------------------


def _matrix(tmp_path: Path, container: list[dict[str, object]], **defaults: object) -> Any:
    from harness import matrix

    data = {"package": {"distribution": "gmpy2", "import": "gmpy2"},
            "defaults": {"timeout": 100, **defaults},
            "environments": {"venv": [{"python": "3.9"}, {"python": "3.10"}],
                             "container": container}}
    return matrix.parse(data, tmp_path / "matrix.yaml")


ARM_AND_X86 = ["manylinux_2_17_x86_64", "manylinux_2_17_aarch64", "win_amd64",
               "musllinux_1_2_s390x"]


def test_release_arches_are_its_glibc_linux_wheels_machines() -> None:
    from harness import follow

    assert follow.release_arches(ARM_AND_X86) == {"x86_64", "aarch64"}


def test_cells_follow_the_release_onto_its_other_architectures(tmp_path: Path) -> None:
    from harness import cells, follow

    m = _matrix(tmp_path, [{"image": "debian11-py3.9"}])
    followed = follow.follow(m, cells.expand(m), ARM_AND_X86)
    assert [c.id for c in followed.added] == ["docker-debian11-py3.9-aarch64"]
    (added,) = followed.added
    assert added.entry.arch == "aarch64" and added.timeout == 100  # type: ignore[attr-defined]
    assert added.matches("py3.9-*") and added.aliases == ("py3.9-debian11-aarch64",)
    (note,) = followed.notes
    assert "added 1 emulated cell (docker-debian11-py3.9-aarch64)" in note
    assert "no clean aarch64 image has Python 3.10" in note
    runnable = follow.runnable([*cells.expand(m), *followed.added], {"aarch64"})
    assert runnable[arches.host().name] == {(3, 9), (3, 10)}
    assert {(3, 9), (3, 11), (3, 13)} <= runnable["aarch64"]


def test_a_matrix_that_opts_out_or_has_the_arch_adds_nothing(tmp_path: Path) -> None:
    from harness import cells, follow

    m = _matrix(tmp_path, [{"image": "debian11-py3.9"}], follow_release=False)
    followed = follow.follow(m, cells.expand(m), ARM_AND_X86)
    assert followed.added == () and "follow_release: false" in followed.notes[0]
    m = _matrix(tmp_path, [{"image": "debian13-py3.13", "arch": "aarch64"}])
    assert follow.follow(m, cells.expand(m), ARM_AND_X86) == follow.Followed()


def test_a_cell_of_an_arch_that_cannot_run_here_is_an_error_naming_why(tmp_path: Path) -> None:
    from harness import cells
    from harness.environments.container import ContainerResources
    from harness.errors import InfrastructureError

    m = _matrix(tmp_path, [{"image": "debian11-py3.9", "arch": "aarch64"}])
    cell = next(c for c in cells.expand(m) if c.kind == "container")
    why = "cannot run aarch64 programs: no binfmt_misc handler qemu-aarch64 is registered"
    resources = ContainerResources(run_id="r", client=object(), recipes={},  # type: ignore[arg-type]
                                   arch_errors={"aarch64": why})
    with pytest.raises(InfrastructureError, match="no binfmt_misc handler"):
        resources.environment(cell)


def test_emulated_container_cells_scale_their_budgets_and_say_so(tmp_path: Path) -> None:
    from harness import cells, imaging
    from harness.environments.container import ContainerResources

    m = _matrix(tmp_path, [{"image": "debian11-py3.9", "arch": "aarch64"},
                           {"image": "debian11-py3.9"}])
    arm, native = (c for c in cells.expand(m) if c.kind == "container")
    resources = ContainerResources(run_id="r", client=object(),  # type: ignore[arg-type]
                                   recipes=imaging.load_recipes())
    env = resources.environment(arm)
    assert env.image == "q-kangaroo-smoke/debian11-py3.9:aarch64"
    assert env.factor == arches.BUDGET_FACTOR and "aarch64 emulated" in (env.emulation or "")
    plain = resources.environment(native)
    assert plain.image == "q-kangaroo-smoke/debian11-py3.9:latest"
    assert plain.factor == 1.0 and plain.emulation is None
    assert m.package.scaled(20).import_budget == 20 * m.package.import_budget

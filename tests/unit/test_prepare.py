"""What prepare makes: typed resources per kind of cell, and the one cell factory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from harness.cells import Cell
from harness.environments.container import ContainerEnvironment, ContainerResources
from harness.environments.process import make_virtualenv, stdlib_venv_works
from harness.environments.venv import VenvEnvironment, VenvResources
from harness.errors import InfrastructureError
from harness.imaging import Recipe
from harness.interpreters import Interpreter
from harness.kinds.container import ContainerEntry
from harness.kinds.venv import VenvEntry
from harness.prepare import Prepared
from harness.sandbox import Sandbox


def venv_cell(python: str) -> Cell:
    return Cell(id=f"venv-py{python}", kind="venv", entry=VenvEntry(python=python), timeout=60)


def container_cell(image: str, python: str | None = None) -> Cell:
    return Cell(id=f"docker-{image}", kind="container",
                entry=ContainerEntry(image=image, python=python), timeout=60)


BOX = Sandbox(launcher=("unshare",), jail=("bwrap",), uid=None, hidden=())


def prepared(tmp_path: Path, *, client: Any = None, error: str | None = None,
             box: Sandbox | str = BOX) -> Prepared:
    found = Interpreter(executable=Path("/opt/py/bin/python3.12"), version="3.12.1",
                        libdir="/opt/py/lib")
    recipe = Recipe(name="debian12-py3.11", base="b", python="/usr/bin/python3")
    return Prepared(kinds={
        "venv": VenvResources(root=tmp_path, uv="/bin/uv", sandbox=box,
                              interpreters={"3.12": found, "3.9": "no Python 3.9 found"}),
        "container": ContainerResources(run_id="r1", client=client, error=error,
                                        recipes={recipe.name: recipe}),
    })


def test_a_venv_cell_gets_its_interpreter_uv_and_the_sandbox(tmp_path: Path) -> None:
    with prepared(tmp_path).environment(venv_cell("3.12")) as env:
        assert isinstance(env, VenvEnvironment)
        assert env.python == Path("/opt/py/bin/python3.12")
        assert env.uv == "/bin/uv" and env.sandbox is BOX
        assert env.workdir.parent == tmp_path
    assert not env.workdir.exists()


def test_without_isolation_a_venv_cell_is_an_error_never_unisolated(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError, match="cannot isolate venv cells"):
        prepared(tmp_path, box="cannot isolate venv cells: no namespaces").environment(
            venv_cell("3.12"))


def test_a_missing_interpreter_is_the_cells_infrastructure_error(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError, match=r"no Python 3\.9 found"):
        prepared(tmp_path).environment(venv_cell("3.9"))


@pytest.mark.parametrize(("cell", "image", "python"), [
    (container_cell("debian12-py3.11"), "q-kangaroo-smoke/debian12-py3.11:latest",
     "/usr/bin/python3"),
    (container_cell("my/img:1"), "my/img:1", "python3"),
    (container_cell("my/img:1", "/usr/local/bin/python3.11"), "my/img:1",
     "/usr/local/bin/python3.11"),
])
def test_a_container_cell_gets_the_recipes_image_or_the_reference(
        tmp_path: Path, cell: Cell, image: str, python: str) -> None:
    env = prepared(tmp_path, client=object()).environment(cell)
    assert isinstance(env, ContainerEnvironment)
    assert (env.image, env.python) == (image, python)
    assert env.labels["q-kangaroo-smoke.run"] == "r1"
    assert env.labels["q-kangaroo-smoke.cell"] == cell.id


@pytest.mark.parametrize(("client", "error", "said"), [
    (None, "cannot reach the Docker engine", "cannot reach the Docker engine"),
    (object(), "building images failed: boom", "building images failed: boom"),
])
def test_without_engine_or_images_every_container_cell_is_an_error(
        tmp_path: Path, client: Any, error: str, said: str) -> None:
    with pytest.raises(InfrastructureError, match=said):
        prepared(tmp_path, client=client, error=error).environment(container_cell("x:1"))


def test_a_python_whose_venv_fails_is_told_apart(tmp_path: Path) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\ncase \"$*\" in *'-m venv'*) exit 1;; esac\n"
                      f'exec {sys.executable} "$@"\n')
    broken.chmod(0o755)
    assert stdlib_venv_works(Path(sys.executable), tmp_path)
    assert not stdlib_venv_works(broken, tmp_path)
    assert list(tmp_path.iterdir()) == [broken]  # the trial venvs are gone


def test_virtualenv_makes_a_bare_venv_or_says_why_not(tmp_path: Path) -> None:
    target = tmp_path / "venv"
    assert make_virtualenv(Path(sys.executable), target, app_data=tmp_path / "app") is None
    assert "virtualenv" in (target / "pyvenv.cfg").read_text()
    assert (target / "bin" / "python").exists()
    assert not list(target.glob("lib/python*/site-packages/pip"))  # --no-seed
    why = make_virtualenv(tmp_path / "nope", tmp_path / "v2", app_data=tmp_path / "app")
    assert why


def test_reaping_lists_again_when_another_run_removes_a_container_meanwhile() -> None:
    import docker.errors

    from harness.environments import container

    class Containers:
        calls = 0

        def list(self, **_: Any) -> list[Any]:
            self.calls += 1  # the SDK inspects each listed container: one is gone by then
            if self.calls == 1:
                raise docker.errors.NotFound("No such container: b0106585")
            return []

    class Client:
        containers = Containers()

    assert container.reap(Client()) == []  # type: ignore[arg-type]
    assert Client.containers.calls == 2

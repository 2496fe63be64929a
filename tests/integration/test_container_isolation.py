"""A container cell is locked down, as seen from inside a real cell: no network interface but
loopback, a read-only root, no capabilities (nor a way to gain any), not root.  Each lock
is asserted on its own, so removing any one of them fails this test (checked by hand:
network_mode "host" -> interfaces, read_only -> root_mount, cap_drop -> capabilities,
security_opt -> no_new_privs, user -> root_ids; with no network_mode at all an engine
without a bridge cannot start the cell: ERROR)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunHarness

_STATUS = "[l.split(':') for l in open('/proc/self/status').read().splitlines()]"
LOCKS: dict[str, tuple[str, Any]] = {
    # network_mode="none": only the loopback interface exists
    "interfaces": ("sorted(l.split(':')[0].strip() "
                   "for l in open('/proc/net/dev').read().splitlines()[2:])", ["lo"]),
    # read_only=True: the root file system is mounted read-only
    "root_mount": ("[f.split()[5].split(',')[0] for f in open('/proc/self/mountinfo') "
                   "if f.split()[4] == '/']", ["ro"]),
    # cap_drop=["ALL"]: nothing in any capability set, the bounding set included
    "capabilities": (f"{{k: int(v, 16) for k, v in {_STATUS} if k.startswith('Cap')}}",
                     {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}),
    # security_opt no-new-privileges: setuid programs cannot gain any
    "no_new_privs": (f"[int(v) for k, v in {_STATUS} if k == 'NoNewPrivs']", [1]),
    # user="1000:1000": no real, effective or saved id is root
    "root_ids": ("[i for i in (*__import__('os').getresuid(), *__import__('os').getresgid()) "
                 "if i == 0]", []),
}
CELL = "locked"
RECIPE = "debian12-py3.11"


@pytest.fixture
def root_by_default(docker_client: Any, images: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The recipe's image with root as its default user (the recipes set USER 1000), so only
    the harness's own ``user=`` lock can keep the cell's ids off 0; removed afterwards."""
    from harness import imaging

    recipe = imaging.load_recipes()[RECIPE]
    tag = f"q-kangaroo-smoke-test/root-by-default:{uuid.uuid4().hex[:12]}"
    docker_client.images.build(fileobj=io.BytesIO(f"FROM {recipe.tag}\nUSER 0:0\n".encode()),
                               tag=tag, rm=True)
    try:
        yield tag, recipe.python
    finally:
        docker_client.images.remove(tag, force=True)


def test_a_container_cell_sees_every_lock_from_inside(
        wheels: dict[str, Path], run_harness: RunHarness, matrix_file: Callable[..., Path],
        root_by_default: tuple[str, str]) -> None:
    image, python = root_by_default
    checks = [{"name": name, "expr": expr, "expected": expected}
              for name, (expr, expected) in LOCKS.items()]
    matrix = matrix_file(container=[{"image": image, "python": python, "id": CELL}],
                         extra_checks=checks)
    run = run_harness(str(wheels["good"]), "--matrix", str(matrix))
    cell = run.cells()[CELL]
    results = {c["name"]: c for c in cell["checks"]}
    for name in LOCKS:  # each lock on its own line of the failure
        assert results[name]["status"] == "pass", (name, results[name]["detail"], cell["reason"])
    assert cell["verdict"] == "PASS", cell["reason"]
    assert run.returncode == 0, run.output

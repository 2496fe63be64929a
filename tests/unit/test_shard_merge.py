"""Shards (deterministic, disjoint, balanced), the JSON cell list, merge and its refusals."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness import cli, merge, outcome, report, shard, summary
from harness.cells import Cell
from harness.errors import EXIT_FAIL, EXIT_INPUT, EXIT_PASS, InputError
from harness.kinds.container import ContainerEntry
from harness.kinds.venv import VenvEntry
from harness.verdict import CellResult, Diagnosis
from tests.unit.conftest import P20, judge_one, make_wheel, passing_events, release_of


def cells(venvs: int, containers: int) -> list[Cell]:
    return ([Cell(id=f"venv-{i}", kind="venv", entry=VenvEntry(python=f"3.{i}"), timeout=1)
             for i in range(venvs)]
            + [Cell(id=f"docker-{i}", kind="container", entry=ContainerEntry(image=f"img{i}"),
                    timeout=1) for i in range(containers)])


@pytest.mark.parametrize(("venvs", "containers", "count"), [(5, 5, 2), (5, 5, 3), (1, 7, 4),
                                                              (3, 0, 5), (2, 2, 1)])
def test_shards_are_disjoint_complete_and_balanced_by_kind(venvs: int, containers: int,
                                                           count: int) -> None:
    everything = cells(venvs, containers)
    parts = [shard.select(everything, shard.Shard(index=i, count=count))
             for i in range(1, count + 1)]
    ids = [c.id for part in parts for c in part]
    assert sorted(ids) == sorted(c.id for c in everything)  # together the whole, disjoint
    assert len(ids) == len(set(ids))
    for kind, total in (("venv", venvs), ("container", containers)):
        per = [sum(c.kind == kind for c in part) for part in parts]
        assert max(per) - min(per) <= 1 and sum(per) == total, (kind, per)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    # deterministic and in selection order
    again = shard.select(everything, shard.Shard(index=1, count=count))
    assert again == parts[0]
    assert [everything.index(c) for c in parts[0]] == sorted(everything.index(c)
                                                             for c in parts[0])


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1/0", "a/b", "1", "", "1/2/3", "-1/2"])
def test_bad_shard_spec_is_one_line_input_error(spec: str) -> None:
    with pytest.raises(InputError) as err:
        shard.parse(spec)
    assert "\n" not in str(err.value) and "I/N" in str(err.value)
    assert cli.main(["--list", f"--shard={spec}"]) == EXIT_INPUT


def test_job_list_shard_runs_exactly_that_cell() -> None:
    everything = cells(3, 2)
    jobs = shard.job_list(everything)
    assert [j["id"] for j in jobs] == [c.id for c in everything]
    for job in jobs:
        picked = shard.select(everything, shard.parse(job["shard"]))
        assert [c.id for c in picked] == [job["id"]]
        assert job["runner"] == "ubuntu-latest"
        assert {"kind", "image", "python"} <= set(job)


def test_list_format_json_prints_the_default_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list", "--format", "json"]) == EXIT_PASS
    jobs = json.loads(capsys.readouterr().out)
    assert {j["kind"] for j in jobs} == {"venv", "container"}
    assert all(j["image"] for j in jobs if j["kind"] == "container")
    assert cli.main(["--list", "--format", "json", "--shard", f"1/{len(jobs)}"]) == EXIT_PASS
    assert len(json.loads(capsys.readouterr().out)) == 1


# --- merge, on synthetic reports ---

RELEASE = release_of(make_wheel())
P1 = [1]


def result(cid: str, verdict: str = "PASS") -> CellResult:
    """A judged cell: PASS, or FAIL on the declared check (with a diagnosis)."""
    if verdict == "PASS":
        return judge_one(passing_events(), cell_id=cid)
    failed = judge_one(passing_events(partition_gf={"got": P1, "expected": P20}), cell_id=cid)
    assert failed.verdict.value == verdict
    return replace(failed, diagnosis=Diagnosis(title="tag refused", advice="rebuild"))


ALL = ["a", "b", "c"]


def shard_report(index: int, count: int, ids: list[str], verdicts: dict[str, str],
                 **over: Any) -> dict[str, Any]:
    """A shard's report as the harness writes it (report.to_json of judged cells)."""
    results = [result(i, verdicts.get(i, "PASS")) for i in ids]
    info = report.RunInfo(run_id=f"r{index}", matrix="m.yaml", release=RELEASE,
                          started=1_700_000_000 + index, finished=1_700_000_002 + index,
                          interrupted=False, exit_code=outcome.exit_code(
                              results, interrupted=False), selected=tuple(ids),
                          matrix_sha256="m" * 64, shard=f"{index}/{count}",
                          all_cells=tuple(ALL))
    data: dict[str, Any] = json.loads(json.dumps(report.to_json(info, results)))
    data.update(over)
    return data


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "smoke.json").write_text(json.dumps(data))
    return d


def run_merge(tmp_path: Path, *reports: dict[str, Any]) -> tuple[int, str]:
    tmp_path.mkdir(exist_ok=True)
    dirs = [str(write(tmp_path, f"s{n}", r)) for n, r in enumerate(reports)]
    out = Console(file=open(tmp_path / "out.txt", "w"), width=300)  # noqa: SIM115
    try:
        code = merge.main([*dirs, "--report-dir", str(tmp_path / "merged")], out)
    except InputError as exc:
        return EXIT_INPUT, str(exc)
    out.file.close()
    return code, (tmp_path / "out.txt").read_text()


def test_merge_gives_one_report_and_the_unsharded_exit_code(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    step = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    code, _ = run_merge(tmp_path, shard_report(2, 2, ["b"], {"b": "FAIL"}),
                        shard_report(1, 2, ["a", "c"], {}))
    assert code == EXIT_FAIL
    merged = json.loads((tmp_path / "merged" / "smoke.json").read_text())
    assert [c["id"] for c in merged["cells"]] == ALL  # the unsharded order
    assert merged["summary"]["PASS"] == 2 and merged["summary"]["FAIL"] == 1
    assert merged["exit_code"] == EXIT_FAIL and merged["shard"] == "1/1"
    assert [s["shard"] for s in merged["shards"]] == ["1/2", "2/2"]
    junit = (tmp_path / "merged" / "smoke.junit.xml").read_text()
    assert junit.count("<testsuite ") == 3 and 'failures="1"' in junit
    md = (tmp_path / "merged" / "smoke.md").read_text()
    assert "| b | ❌ FAIL |" in md and "tag refused" in md
    assert step.read_text().strip() == md.strip()


def test_merge_all_pass_exits_0(tmp_path: Path) -> None:
    code, out = run_merge(tmp_path, shard_report(1, 2, ["a", "c"], {}),
                          shard_report(2, 2, ["b"], {}))
    assert code == EXIT_PASS and "3 PASS" in out


def test_merge_interrupted_shard_is_130(tmp_path: Path) -> None:
    code, _ = run_merge(tmp_path, shard_report(1, 2, ["a", "c"], {}),
                        shard_report(2, 2, ["b"], {}, interrupted=True))
    assert code == 130


BASE1, BASE2 = shard_report(1, 2, ["a", "c"], {}), shard_report(2, 2, ["b"], {})


@pytest.mark.parametrize(("second", "words"), [
    ({**BASE2, "wheel": {**BASE2["wheel"], "sha256": "2" * 64}}, "different wheels"),
    ({**BASE2, "release": {"files": [{"sha256": "9" * 64}]}}, "different release sets"),
    ({**BASE2, "matrix_sha256": "n" * 64}, "different matrices"),
    ({**BASE2, "all_cells": ["a", "b", "c", "d"]}, "different matrices"),
    ({**BASE2, "shard": "2/3"}, "different counts"),
    ({**BASE1, "run_id": "again"}, "shard 1/2 given twice"),
    ({**BASE2, "cells": [*BASE2["cells"], BASE1["cells"][1]]}, "cell c reported twice"),
    ({**BASE2, "cells": [{**BASE2["cells"][0], "id": "z"}]}, "not in the run's selection"),
    ({**BASE2, "schema_version": 1}, "schema version 1, this harness reads 3"),
])
def test_merge_refuses_reports_of_different_runs(tmp_path: Path, second: dict[str, Any],
                                                 words: str) -> None:
    code, message = run_merge(tmp_path, copy.deepcopy(BASE1), second)
    assert code == EXIT_INPUT
    assert words in message and "\n" not in message
    assert not (tmp_path / "merged" / "smoke.json").exists()


def test_merge_refuses_a_missing_shard_and_non_reports(tmp_path: Path) -> None:
    code, message = run_merge(tmp_path, shard_report(1, 3, ["a"], {}),
                              shard_report(3, 3, ["c"], {}))
    assert code == EXIT_INPUT and "shard 2/3 missing" in message
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "smoke.json").write_text("{}")
    assert cli.main(["merge", str(tmp_path / "junk")]) == EXIT_INPUT
    assert cli.main(["merge", str(tmp_path / "nothing-here")]) == EXIT_INPUT


def test_merge_rederives_every_verdict_and_refuses_an_edited_one(tmp_path: Path) -> None:
    forged = shard_report(2, 2, ["b"], {"b": "FAIL"})
    forged["cells"][0]["verdict"] = "PASS"  # the checks still say partition_gf failed
    code, message = run_merge(tmp_path, shard_report(1, 2, ["a", "c"], {}), forged)
    assert code == EXIT_INPUT and "\n" not in message
    assert "cell b says PASS but its checks give FAIL" in message
    assert not (tmp_path / "merged" / "smoke.json").exists()
    hidden = shard_report(2, 2, ["b"], {})
    hidden["cells"][0]["run"]["infra_error"] = "docker: gone"  # an ERROR stored as PASS
    code, message = run_merge(tmp_path / "x", shard_report(1, 2, ["a", "c"], {}), hidden)
    assert code == EXIT_INPUT and "says PASS but its checks give ERROR" in message


def test_merge_names_a_missing_cell_with_exit_2(tmp_path: Path) -> None:
    cut = shard_report(1, 2, ["a", "c"], {})
    del cut["cells"][1]
    code, message = run_merge(tmp_path, cut, shard_report(2, 2, ["b"], {}))
    assert code == EXIT_INPUT and "\n" not in message
    assert "cell c of shard 1/2 missing from its report" in message
    cut["selected"] = ["a"]  # the selection edited too: still named
    code, message = run_merge(tmp_path / "x", cut, shard_report(2, 2, ["b"], {}))
    assert code == EXIT_INPUT and "cell c of the run's selection missing" in message


def test_summary_escapes_and_names_the_decision() -> None:
    data = shard_report(1, 1, ["a"], {"a": "FAIL"}, decision={"go": False, "reason": "a|b"})
    data["cells"][0]["reason"] = "line1\nline2 | pipe"
    text = summary.markdown(data)
    assert "**NO-GO**: a\\|b" in text
    assert "line1 line2 \\| pipe" in text

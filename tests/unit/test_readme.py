"""README's commands checked cheaply: every option it shows exists, every nox session it names
is in the noxfile, its matrix example is schema-valid, every variable it names is an option's."""

from __future__ import annotations

import re
import shlex

import yaml

from harness import arguments, config, merge
from harness.matrix import validate
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)


def _commands() -> list[list[str]]:
    """The harness command lines of README's shell blocks (nox's part after ``--``)."""
    found = []
    for lang, body in BLOCKS:
        if lang not in ("sh", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.removeprefix("$ ").split("  #")[0].strip()
            if not line.startswith(("nox ", "python -m harness", "q-kangaroo-smoke")):
                continue
            words = shlex.split(line)
            if words[0] == "nox":
                words = words[words.index("--") + 1:] if "--" in words else []
            elif words[0] == "python":
                words = words[3:]
            else:
                words = words[1:]
            found.append(words)
    return found


def test_every_option_readme_shows_exists() -> None:
    commands = _commands()
    assert len(commands) >= 8
    known = {s for a in arguments.parser()._actions for s in a.option_strings}
    known_merge = {s for a in merge.parser()._actions for s in a.option_strings}
    for words in commands:
        options = {w.split("=")[0] for w in words if w.startswith("-")}
        allowed = known_merge if words[:1] == ["merge"] else known
        assert options <= allowed, (words, options - allowed)
    text = re.sub(r"```.*?```", "", README, flags=re.S)  # prose only (not sample output)
    prose = set(re.findall(r"`(--[a-z-]+)", text))
    assert prose <= known | known_merge, prose - known - known_merge


def test_every_nox_session_readme_names_exists() -> None:
    noxfile = (ROOT / "noxfile.py").read_text()
    sessions = set(re.findall(r"^def (\w+)\(session", noxfile, flags=re.M))
    named = set(re.findall(r"nox -s \"?(\w+)", README))
    assert named and named <= sessions, named - sessions


def test_readme_matrix_example_is_schema_valid() -> None:
    example = next(body for lang, body in BLOCKS if lang == "yaml" and "package:" in body)
    assert validate(yaml.safe_load(example), "README") == []


def test_every_variable_readme_names_is_an_options() -> None:
    names = {config.env_name(a) for a in arguments.parser()._actions} - {None}
    named = set(re.findall(r"Q_KANGAROO_SMOKE_[A-Z_]+", README)) - {"Q_KANGAROO_SMOKE_"}
    assert named and named <= names, named - names

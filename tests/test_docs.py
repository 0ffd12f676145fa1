"""The documentation: the site builds strictly, the API reference is documented, and the
commands and code the docs show do what they say (the cheap ones run here; the expensive ones
are listed with the reason they are not)."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)

# Commands the docs show that are not run here, by prefix (after `npigym ` or the script
# path), each with the reason. A command that matches neither this nor CHEAP fails the test,
# so a new command in the docs must be classified.
EXPENSIVE = {
    "make demo": "trains for about 2 minutes",
    "make test": "runs the whole suite",
    "make docs": "the site is built by test_site_builds_strictly",
    "make lint": "ruff over the tree, not the docs' concern",
    "make bench": "a benchmark of a few minutes",
    ".venv/bin/python -m pytest": "runs part of the suite",
    "npigym train": "training takes minutes (the trainer's own tests run it small)",
    "npigym eval runs/": "needs a trained run directory",
    "npigym play runs/": "needs a trained run directory",
    "npigym play out/demo_run": "needs the demo's run directory",
    "npigym skills": "needs a trained run directory or a saved skill",
    "npigym curriculum": "trains three generations of skills (an hour)",
    "npigym sweep examples/": "trains 20 trials (minutes); tests/sweeps/ run small sweeps",
    "npigym sweep report sweeps/": "needs a finished sweep (tests/sweeps/ report one)",
    "npigym sweep status sweeps/": "needs a sweep directory (tests/sweeps/ show one)",
    "pip install": "installs packages",
    "npigym npi-train": "training takes minutes",
    "python benchmarks/": "benchmarks run for minutes to hours",
    ".venv/bin/python benchmarks/": "benchmarks run for minutes to hours",
    "npigym traces Addition-v0 -n 640": "the NPI recipe's traces: "
                                         "test_npi_recipe_traces_are_32_per_length runs -n 40",
}
# Commands that run here (each in seconds).
CHEAP = ("npigym list", "npigym play Addition-v0", "npigym play Sorting-v0",
         "npigym play Canonicalize-v0", "npigym traces")
# Python blocks not run, by a phrase they contain, with the reason.
PYTHON_NOT_RUN = {
    'skills.save("runs/add"': "needs a trained run directory",
    "skills.skill_from_run(": "needs a trained run directory",
}


def fenced_blocks(lang: str) -> Iterator[Tuple[str, str]]:
    for path in DOC_FILES:
        text = path.read_text()
        for m in FENCE.finditer(text):
            if m.group(1) == lang and not m.group(2).lstrip().startswith("--8<--"):
                yield f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}", m.group(2)


def shell_commands() -> Iterator[Tuple[str, str]]:
    for where, block in fenced_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split("  #")[0].split(" # ")[0].strip()
            if command:
                yield where, command


def classify(command: str) -> Optional[str]:
    """None: run it; else the reason it is not run. Raises for an unclassified command."""
    for prefix, reason in EXPENSIVE.items():
        if command.startswith(prefix):
            return reason
    if command.startswith(CHEAP):
        return None
    raise AssertionError(f"unclassified command in the docs: {command!r}; add it to CHEAP "
                         "or EXPENSIVE in tests/test_docs.py")


# ------------------------------------------------------------------------------------------------
# The site.
# ------------------------------------------------------------------------------------------------
def test_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                             "-d", str(tmp_path / "site")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "environments" / "addition" / "index.html").exists()
    page = (tmp_path / "site" / "environments" / "addition" / "index.html").read_text()
    assert "MOVE_PTR" in page and "action_mask" in page  # the generated tables are there


def _api_objects() -> Iterator[Tuple[str, Optional[List[str]]]]:
    import yaml

    for page in sorted((ROOT / "docs" / "api").glob("*.md")):
        for m in re.finditer(r"^::: (\S+)\n((?:    .*\n)*)", page.read_text(), re.M):
            options = yaml.safe_load(re.sub(r"^    ", "", m.group(2), flags=re.M)) or {}
            yield m.group(1), options.get("options", {}).get("members")


def _overrides(path: str) -> bool:
    """Whether ``path`` (module.Class.method) overrides a base class's method, whose
    documentation it inherits."""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        with contextlib.suppress(ImportError):
            obj = importlib.import_module(".".join(parts[:i]))
            break
    for name in parts[i:-1]:
        obj = getattr(obj, name)
    return isinstance(obj, type) and any(parts[-1] in vars(b) for b in obj.__mro__[1:])


def test_api_reference_is_documented():
    """Every module, class and function the API reference lists has a docstring (a method
    that overrides a documented base method inherits its documentation)."""
    griffe = pytest.importorskip("griffe")
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)])
    missing: List[str] = []

    def public(obj):
        for name, member in obj.members.items():
            if name.startswith("_"):
                continue
            exported = obj.is_module and obj.exports is not None
            if exported and name not in obj.exports:
                continue
            if member.is_alias and not exported:
                continue
            yield name, member

    def check(obj, members=None):
        target = obj.final_target if obj.is_alias else obj
        if not (target.docstring and target.docstring.value.strip()):
            missing.append(target.path)
        if target.kind.value not in ("module", "class"):
            return
        items = [(n, target.members.get(n)) for n in members] if members else public(target)
        for name, member in items:
            assert member is not None, f"{target.path}.{name} is listed but does not exist"
            kind = (member.final_target if member.is_alias else member).kind.value
            if kind in ("class", "function"):
                check(member)

    for path, members in _api_objects():
        loader.load(path.split(".")[0])
        check(loader.modules_collection[path], members)
    undocumented = sorted(p for p in set(missing) if not _overrides(p))
    assert not undocumented, "no docstring: " + ", ".join(undocumented)


# ------------------------------------------------------------------------------------------------
# The docs' snippets.
# ------------------------------------------------------------------------------------------------
def test_every_shell_command_is_classified():
    commands = list(shell_commands())
    assert len(commands) > 10
    for _, command in commands:
        classify(command)  # raises for an unclassified one


def _runs(command: str) -> bool:
    try:
        return classify(command) is None
    except AssertionError:  # test_every_shell_command_is_classified reports it
        return False


@pytest.mark.parametrize("command", sorted({c for _, c in shell_commands() if _runs(c)}))
def test_cheap_shell_command_runs(command, tmp_path, monkeypatch):
    from npigym import cli

    monkeypatch.chdir(tmp_path)
    argv = shlex.split(command)[1:]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    assert code == 0, f"{command}: exit {code}\n{out.getvalue()[-2000:]}"
    if argv[0] == "play":
        assert "solved in" in out.getvalue()
    if "--compact" in argv and argv[1].startswith("Addition"):
        first = out.getvalue().splitlines()[0]
        assert " + " in first and "OUT:" in first  # the instance is shown, not only calls
    for flag in ("--gif", "-o"):
        if flag in argv:
            assert (tmp_path / argv[argv.index(flag) + 1]).stat().st_size > 0


def test_npi_recipe_traces_are_32_per_length(tmp_path):
    """The NPI recipe's trace command (``-n 640 max_digits=20``: sizes uniform in 1..20) with
    fewer episodes; training it takes minutes (benchmarks/results/npi_addition.md)."""
    from npigym import cli, traces

    path = tmp_path / "addition.npz"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["traces", "Addition-v0", "-n", "40", "max_digits=20",
                         "-o", str(path)]) == 0
    assert traces.load(str(path)).num_episodes == 40


def python_blocks() -> List[Tuple[str, str]]:
    out = []
    for where, code in fenced_blocks("python"):
        if any(phrase in code for phrase in PYTHON_NOT_RUN):
            continue
        out.append((where, code))
    return out


@pytest.mark.parametrize("where, code", python_blocks(), ids=[w for w, _ in python_blocks()])
def test_python_block_runs(where, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the example specs the docs load
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, where, "exec"), {"__name__": "__docs__"})

"""The documentation points at files that exist, and its commands compose.

Every repository path named in README.md, CHANGELOG.md, docs/**/*.md and ddip/conf/**/*.yaml exists (paths a command
on the same page writes, e.g. after ``--out``, count as made by it); every relative link of those pages resolves;
no page sends a user to a path outside the repository (``../shared``). Every ``ddip ...`` / ``python train.py ...``
command of the README and of docs/ composes with Hydra, as ``--cfg job`` would.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from hydra.core.override_parser.overrides_parser import OverridesParser

from ddip.run import compose_train

PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "research" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CONFIGS = sorted((ROOT / "ddip" / "conf").rglob("*.yaml"))

# a repository path: one of the tracked top-level folders, then path characters (not a module name like ddip.haze)
PATH = re.compile(r"(?<![\w./$<>-])((?:scripts|docs|ddip|results|research|tests)/[\w./*<>-]*)")
TOP_LEVEL = re.compile(r"(?<![\w./-])(requirements[\w-]*\.txt|pyproject\.toml|train\.py|CHANGELOG\.md)")
# what a command writes: evaluate.py/benchmark.py --out, Hydra's run and sweep dirs
OUTPUT = re.compile(r"(?:--out[ =]|hydra\.(?:run|sweep)\.dir=)([\w./-]+)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
LINK_TARGET = re.compile(r"\]\([^)\s]+\)")
FENCE = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
COMMAND = re.compile(r"^(?:ddip|python train\.py)(?:\s|$)")


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def named_paths(text: str) -> list[str]:
    """The repository paths ``text`` names, without trailing punctuation, placeholders (``docs/tasks/<task>.md``)
    left out, and the top-level files it names (``requirements.txt``, ``train.py``, ...)."""
    text = LINK_TARGET.sub("]", text)  # a link's target is relative to its page: test_every_relative_link_resolves
    paths = [match.rstrip("./") for match in PATH.findall(text)] + TOP_LEVEL.findall(text)
    return sorted({path for path in paths if "<" not in path and ">" not in path})


def exists(path: str, outputs: set[str]) -> bool:
    if any(path == out or path.startswith(out + "/") for out in outputs):
        return True
    return any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()


@pytest.mark.parametrize("page", PAGES + CONFIGS, ids=relative)
def test_every_named_path_exists(page):
    text = page.read_text()
    outputs = {out.rstrip("/") for out in OUTPUT.findall(text)}
    missing = [path for path in named_paths(text) if not exists(path, outputs)]
    assert not missing, f"{relative(page)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_relative_link_resolves(page):
    targets = [link.split("#")[0] for link in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:|#", link)]
    missing = [target for target in targets if not (page.parent / target).exists()]
    assert not missing, f"{relative(page)} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_no_page_points_outside_the_repository(page):
    text = page.read_text()
    assert "../shared" not in text and "/work/" not in text


def commands() -> list[tuple[str, str]]:
    """(page, command line) for every ``ddip`` / ``python train.py`` line of a fenced bash block in the README and
    docs/, continuation lines joined, and every such inline code span of the README."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = page.read_text()
        lines = [line.strip() for block in FENCE.findall(text) for line in block.replace("\\\n", " ").splitlines()]
        if page.name == "README.md" and page.parent == ROOT:
            lines += [span for span in re.findall(r"`([^`\n]+)`", text) if "..." not in span]
        found += [(relative(page), line) for line in lines if COMMAND.match(line)]
    return found


def overrides_of(line: str) -> list[str]:
    """The Hydra overrides of a command line: shell comments, the program, ``-m`` and ``--help`` / ``--cfg job``
    dropped, placeholders (``<dir>``) and shell variables (``$C``) replaced by a dummy word."""
    line = re.sub(r"\$\w+", "x", re.sub(r"<[^>]*>", "x", line))
    words = shlex.split(line, comments=True)
    words = words[2:] if words[0] == "python" else words[1:]
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "--cfg":
            skip = True
        elif word not in ("-m", "--multirun", "--help", "--hydra-help"):
            kept.append(word)
    return kept


def variants(overrides: list[str]) -> list[list[str]]:
    """A sweep's overrides as single runs: every value of every swept key once, the other keys at their first value
    (Hydra's compose API refuses sweeps; the launchers' own keys compose like any other)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = [
        [f"{item.get_key_element()}={value}" for value in item.sweep_string_iterator()] if item.is_sweep_override() else [text]
        for item, text in zip(parsed, overrides)
    ]
    runs = [[options[0] for options in choices]]
    for index, options in enumerate(choices):
        runs += [[*(o[0] for o in choices[:index]), value, *(o[0] for o in choices[index + 1 :])] for value in options[1:]]
    return runs


COMMANDS = commands()


def test_the_readme_has_commands():
    assert sum(page == "README.md" for page, _ in COMMANDS) >= 10


# the sweep extra's Hydra plugins, which an install without `.[sweep]` lacks
PLUGINS = {
    "hydra/launcher=joblib": "hydra_plugins.hydra_joblib_launcher",
    "hydra/launcher=slurm": "hydra_plugins.hydra_submitit_launcher",
    "hydra/launcher=submitit": "hydra_plugins.hydra_submitit_launcher",
    "hparams_search=optuna": "hydra_plugins.hydra_optuna_sweeper",
}


@pytest.mark.parametrize(("page", "line"), COMMANDS, ids=[f"{page}: {line[:60]}" for page, line in COMMANDS])
def test_every_command_composes(page, line):
    for override, plugin in PLUGINS.items():
        if override in line:
            pytest.importorskip(plugin)
    for overrides in variants(overrides_of(line)):
        assert compose_train(overrides) is not None, overrides  # a refused override raises DdipError


def test_a_readme_command_composes_through_train_py():
    """One command the way a user runs it: ``python train.py ... --cfg job`` prints the config and exits 0."""
    line = next(line for page, line in COMMANDS if page == "README.md" and "data.image=" in line and " -m " not in line)
    command = [sys.executable, "train.py", *overrides_of(line), "--cfg", "job"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "task:" in result.stdout and "data:" in result.stdout

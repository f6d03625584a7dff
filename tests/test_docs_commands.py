"""Every command the docs tell a person to type exists as written: each `registry …` mention in README.md
and docs/ names a real command and only options it has (a synopsis like `[--format json|csv|pdf]` too),
and a literal command line parses; each `python -m bench.…` names a benchmark and only its options. (The
API guide's curl examples run for real: tests/test_docs.py.)"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from registry.cli import parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A command in an inline code span (which may wrap onto the next line), or a line of a code block.
INLINE = re.compile(r"`(?:\.venv/bin/)?(registry [a-z][^`]*)`")
FENCED = re.compile(r"^```\w*\n(.*?)^```", re.S | re.M)
LINE = re.compile(r"^(?:\$ )?(?:\.venv/bin/)?(registry [a-z][^\n#]*)", re.M)
BENCH = re.compile(r"python -m bench\.(\w+)([^`\n#]*)")
SYNOPSIS = re.compile(r"[\[\]|…()<>]")
# What a placeholder in a literal command stands for, so that the line can be parsed.
SAMPLES = {"DAY": "2026-12-01", "ID": "3f2b1c4e-0000-4000-8000-000000000001", "N": "2", "P": "18000",
           "H": "127.0.0.1", "BANK": "Bank", "NAME": "ops-1", "USERNAME": "ops-1", "NUMBER": "PR-1",
           "FILE": "out.pdf", "FILE.csv": "prints.csv"}  # fmt: skip


def registry_mentions() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        blocks = [b.group(1) for b in FENCED.finditer(text)]
        prose = FENCED.sub("", text)
        found += [(doc.name, m.group(1)) for m in INLINE.finditer(prose)]
        found += [(doc.name, m.group(1)) for block in blocks for m in LINE.finditer(block)]
    return [(name, " ".join(command.split())) for name, command in found]


def bench_mentions() -> list[tuple[str, str, str]]:
    return [
        (doc.name, m.group(1), m.group(2)) for doc in DOCS for m in BENCH.finditer(doc.read_text("utf-8"))
    ]


def subcommand(root: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser the words lead to, and the words after its name."""
    here, rest = root, list(words)
    while rest:
        choices = next((a.choices for a in here._actions if isinstance(a, argparse._SubParsersAction)), None)
        if not choices or rest[0] not in choices:
            break
        here, rest = choices[rest[0]], rest[1:]
    return here, rest


def options(p: argparse.ArgumentParser) -> set[str]:
    return {o for a in p._actions for o in a.option_strings}


def test_the_docs_mention_registry_commands() -> None:
    assert len(registry_mentions()) > 30 and len(bench_mentions()) > 5


@pytest.mark.parametrize(("doc", "text"), registry_mentions())
def test_each_registry_command_in_the_docs_exists(doc: str, text: str) -> None:
    root = parser()
    words = text.replace("\\|", "|").split()[1:]
    target, rest = subcommand(root, words)
    assert target is not root, f"{doc}: `{text}` names no command"
    flags = {w.split("=")[0].strip("[]()") for w in rest if w.lstrip("[(").startswith("-")}
    assert flags <= options(target), f"{doc}: `{text}`: {sorted(flags - options(target))} not options"
    if rest and not SYNOPSIS.search(text):  # a command line as typed, not only a command's name
        line = [SAMPLES.get(w, w) for w in shlex.split(text)[1:]]
        try:
            root.parse_args(line)
        except SystemExit:
            pytest.fail(f"{doc}: `{text}` does not parse as written")


@pytest.mark.parametrize(("doc", "name", "rest"), bench_mentions())
def test_each_benchmark_in_the_docs_exists(doc: str, name: str, rest: str) -> None:
    source = ROOT / "bench" / f"{name}.py"
    assert source.exists(), f"{doc}: bench.{name} does not exist"
    code = source.read_text(encoding="utf-8")
    known = set(re.findall(r'"(--[a-z][\w-]*)"', code))
    # A bench that starts as another does (pledge_bench.prepare) takes that one's options.
    for other in re.findall(r"^from bench\.(\w+) import .*\bprepare\b", code, re.M):
        code += (ROOT / "bench" / f"{other}.py").read_text(encoding="utf-8")
    if "load_arguments(" in code:  # bench/common.py's options of every load benchmark, and its population
        calls = re.findall(r"load_arguments\((.*)\)$", code, re.M)  # the bench's call, on its line
        known |= {f"--{p}" for call in calls for p in re.findall(r'population="(\w+)"', call)}
        common = (ROOT / "bench" / "common.py").read_text(encoding="utf-8")
        shared = common[common.index("def load_arguments(") :]
        optional = {"--history", "--naptime"}  # only a bench that asks for them has them
        known |= set(re.findall(r'"(--[a-z][\w-]*)"', shared[: shared.index("\ndef ")])) - optional
        known |= {flag for flag in optional if any(f"{flag[2:]}=" in call for call in calls)}
    for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
        assert flag in known, f"{doc}: bench.{name} has no option {flag}"

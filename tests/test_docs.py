"""The API guide runs as written: its shell examples, in order, in one shell, against the demo served by a
real app; each example's shown output is what the registry answers.

In docs/api-guide.md, between `<!-- doc-test: begin -->` and `<!-- doc-test: end -->`, every ```bash block
runs (`set -e -o pipefail`: a failing command fails the test); a ```json block right after it is the
expected output, as one or more JSON values where an object may leave keys out and a string "…" stands for
anything (a string ending in "…" for anything with that beginning); a ```text block is the expected output
line for line."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from registry import demo
from registry.db import unit_of_work
from registry.principal import SYSTEM, Actor, Role
from tests.conftest import Live

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "api-guide.md"


def guide_text() -> str:
    return GUIDE.read_text()


FENCE = re.compile(r"^```(\w+)\n(.*?)^```\n", re.S | re.M)
END = "__doc_test_block_done__"


@dataclass
class Block:
    language: str
    text: str
    line: int


def blocks(markdown: str) -> list[Block]:
    """The fenced blocks of every doc-test region, in order."""
    found = []
    for region in re.finditer(r"<!-- doc-test: begin -->(.*?)<!-- doc-test: end -->", markdown, re.S):
        offset = markdown[: region.start(1)].count("\n")
        for fence in FENCE.finditer(region.group(1)):
            line = offset + region.group(1)[: fence.start()].count("\n") + 1
            found.append(Block(fence.group(1), fence.group(2), line))
    return found


def json_values(text: str) -> list[Any]:
    decoder, values, at = json.JSONDecoder(), [], 0
    text = text.strip()
    while at < len(text):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values


def matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, str) and expected.endswith("…"):
        return isinstance(actual, str) and actual.startswith(expected[:-1])
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and matches(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


class Shell:
    """One bash for the whole page, so that what a block sets is there for the next."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")  # the shell exited: a command failed under set -e

    def run(self, script: Path, timeout_s: float = 60) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(f"set -e -o pipefail; source {script}; set +e; echo; echo {END}\n")
        self.process.stdin.flush()
        out: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout_s)
            except queue.Empty:
                line = ""
            if not line:
                raise AssertionError("the example failed (or hung):\n" + "".join(out))
            if line.strip() == END:
                return "".join(out).rstrip("\n")
            out.append(line)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def demo_keys(engine: Engine) -> dict[str, str]:
    """The demo, loaded as `scripts/start` loads it, and the keys the guide names."""
    from registry.clock import SystemClock

    actor = Actor(SYSTEM, SystemClock().now(), request_id="demo")
    with unit_of_work(engine) as session:
        assert demo.load(session, actor)
        keys = demo.issue_keys(session, actor)
        demo.console_users(session, actor)
    by_name = {(k.role, k.party): k.key for k in keys}
    return {
        "BANK_KEY": by_name[(Role.BANK, demo.BANKS[0][0])],
        "PLEDGOR_KEY": by_name[(Role.HOLDER, f"{demo.ENTERPRISES[0][0]} (shunan-forestry)")],
        "OPERATOR_1_KEY": by_name[(Role.EXCHANGE, f"{demo.EXCHANGE[0]} (demo-operator-1)")],
        "OPERATOR_2_KEY": by_name[(Role.EXCHANGE, f"{demo.EXCHANGE[0]} (demo-operator-2)")],
        "AUDITOR_KEY": by_name[(Role.AUDITOR, demo.AUDITOR)],
    }


@pytest.fixture
def shell(live: Live, committed_engine: Engine, tmp_path: Path) -> Iterator[Shell]:
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.fail("the guide's examples need curl and jq (scripts/install --tests installs them)")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8", "API": live.url}
    env.update(demo_keys(committed_engine))
    running = Shell(tmp_path, env)
    yield running
    running.close()


def test_the_api_guide_runs_as_written(shell: Shell, tmp_path: Path) -> None:
    found = blocks(guide_text())
    assert sum(1 for b in found if b.language == "bash") >= 8, "the guide's walk-through is not marked"
    output: str | None = None
    for n, block in enumerate(found):
        where = f"docs/api-guide.md:{block.line}"
        if block.language == "bash":
            script = tmp_path / f"block-{n}.sh"
            script.write_text(block.text)
            output = shell.run(script)
        elif block.language in ("json", "text"):
            assert output is not None, f"{where}: an expected output with no command before it"
            if block.language == "text":
                assert output.splitlines() == block.text.rstrip("\n").splitlines(), f"{where}:\n{output}"
            else:
                expected, actual = json_values(block.text), json_values(output)
                assert matches(expected, actual), f"{where}: expected\n{block.text}\ngot\n{output}"
            output = None

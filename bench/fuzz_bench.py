"""The long API fuzz: the suite's fuzz test (tests/test_api_fuzz.py) with many more examples per operation.

    .venv/bin/python -m bench.fuzz_bench [--examples 300]

Every documented operation gets `--examples` generated requests (valid and invalid), each sent as five
roles (anonymous, exchange, auditor, bank, holder), against the app on its restricted database role.
Fails, like the suite, on any 5xx, any answer the schema does not document, and any 4xx that changed
data. Printed: requests by outcome, invalid inputs tried, 5xx seen, time."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    report = Path(tempfile.mkstemp(prefix="fuzz-", suffix=".jsonl")[1])
    began = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            str(args.workers),
            "-p",
            "no:cacheprovider",
            "tests/test_api_fuzz.py",
        ],
        cwd=ROOT,
        env={**os.environ, "FUZZ_EXAMPLES": str(args.examples), "FUZZ_REPORT": str(report)},
        check=False,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - began
    totals: Counter[str] = Counter()
    operations = 0
    for line in report.read_text().splitlines():
        row = json.loads(line)
        operations += 1
        totals.update({k: v for k, v in row.items() if k != "operation"})
    report.unlink()
    print(run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:])
    requests = sum(v for k, v in totals.items() if k.endswith("xx"))
    print(
        f"operations {operations}, requests {requests:,} in {elapsed:.0f} s "
        f"({requests / elapsed:.0f}/s); invalid inputs {totals['negative']:,}, valid {totals['positive']:,}"
    )
    print("outcomes: " + ", ".join(f"{k} {totals[k]:,}" for k in sorted(totals) if k.endswith("xx")))
    print(
        f"5xx seen: {totals['5xx']}; 4xx that changed data: {'see failures above' if run.returncode else 0}"
    )
    sys.exit(run.returncode)


if __name__ == "__main__":
    main()

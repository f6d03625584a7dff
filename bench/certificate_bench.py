"""Certificates per second and memory over a long run of renderings.

    .venv/bin/python -m bench.certificate_bench [--renders 500]

The certificate is the demo's (loaded into a fresh embedded PostgreSQL, its registration confirmed through
the service), rendered `--renders` times in each of three set-ups, each in a fresh process so that its
memory is its own:
- inline, fresh fonts: WeasyPrint as it comes, a new font configuration and stylesheet per document (the
  baseline);
- inline, shared fonts: what registry/certificate/render.py does, what is the same for every document
  made once per process (registry/pdf.py);
- pool: the app's Renderer, 2 worker processes replaced every 200 documents, fed from 2 threads.
Printed: documents per second, CPU time per document (all processes: for the pool, the parent and its
workers, the start of the replacement workers included; the steadier figure on a shared machine), median
and p99 time per document, resident memory at start and end and its peak (for the pool: the parent and
its largest worker)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, create_database, fresh_server

RESULTS = ROOT / "bench" / "results"
BASE_URL = "https://registry.example.cn"


def cpu_s(pids: list[int]) -> float:
    """CPU seconds of this process, of its children that ended, and of the live processes `pids`."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks = os.sysconf("SC_CLK_TCK")
    live = sum(
        sum(int(field) for field in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13])
        for pid in pids
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime + live / ticks


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def demo_content() -> dict[str, Any]:
    from sqlalchemy import text

    from registry import demo
    from registry.clock import SystemClock
    from registry.db import make_engine, unit_of_work
    from registry.principal import SYSTEM, Actor

    url = create_database(fresh_server(), "certbench")
    engine = make_engine(url, pool_size=1)
    with unit_of_work(engine) as session:
        demo.load(session, Actor(SYSTEM, SystemClock().now(), request_id="bench"))
        content: dict[str, Any] = session.execute(
            text("SELECT content FROM certificate ORDER BY issued_at LIMIT 1")
        ).scalar_one()
    engine.dispose()
    return content


def phase(name: str, content: dict[str, Any], renders: int) -> dict[str, Any]:
    """One set-up, in this (fresh) process."""
    from registry.certificate import render
    from registry.certificate.renderer import Renderer

    if name == "fresh_fonts":
        from weasyprint import CSS, HTML

        def one() -> bytes:
            css = CSS(string=render.stylesheet_css())  # everything per document, WeasyPrint as it comes
            pdf: bytes = HTML(string=render.render_html(content, BASE_URL)).write_pdf(stylesheets=[css])
            return pdf
    elif name == "shared_fonts":

        def one() -> bytes:
            return render.render_pdf(content, BASE_URL)
    else:
        pool = Renderer(BASE_URL, workers=2, recycle_after=200)

        def one() -> bytes:
            return pool(content)

    warm_up = [threading.Thread(target=one) for _ in range(2 if name == "pool" else 1)]
    for t in warm_up:  # imports, fonts, (pool) the start of both workers
        t.start()
    for t in warm_up:
        t.join()
    workers = list(pool._executor()._processes) if name == "pool" else []
    start_rss, start_cpu, times, sizes = rss_mb(), cpu_s(workers), [], set()
    lock = threading.Lock()
    remaining = [renders]

    def work() -> None:
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            t = time.perf_counter()
            pdf = one()
            elapsed = time.perf_counter() - t
            with lock:
                times.append(elapsed)
                sizes.add(len(pdf))

    threads = [threading.Thread(target=work) for _ in range(2 if name == "pool" else 1)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    if name == "pool":
        pool.close()  # waits for the workers: their CPU time is then the children's
    cpu = cpu_s([]) - start_cpu
    times.sort()
    return {
        "setup": name,
        "renders": renders,
        "per_second": round(renders / wall, 2),
        "cpu_ms_per_doc": round(cpu / renders * 1000, 1),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "p99_ms": round(times[int(len(times) * 0.99) - 1] * 1000, 1),
        "rss_start_mb": round(start_rss, 1),
        "rss_end_mb": round(rss_mb(), 1),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "worker_peak_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
        if name == "pool"
        else None,
        "pdf_bytes": sorted(sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=500)
    parser.add_argument("--phase", choices=["fresh_fonts", "shared_fonts", "pool"], help=argparse.SUPPRESS)
    parser.add_argument("--content", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, json.loads(args.content.read_text()), args.renders)))
        return

    RESULTS.mkdir(parents=True, exist_ok=True)
    content_file = RESULTS / "certificate_content.json"
    content_file.write_text(json.dumps(demo_content(), ensure_ascii=False))
    rows = []
    for name in ("fresh_fonts", "shared_fonts", "pool"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.certificate_bench", "--phase", name, "--content", str(content_file),
             "--renders", str(args.renders)],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["per_second"]
    print(f"\n{'set-up':<14}{'docs/s':>8}{'vs base':>9}{'CPU ms/doc':>12}{'median ms':>11}{'p99 ms':>8}"
          f"{'RSS start→end MB':>20}{'peak MB':>9}{'worker peak':>13}")  # fmt: skip
    for r in rows:
        worker = f"{r['worker_peak_mb']:.0f}" if r["worker_peak_mb"] else "-"
        print(f"{r['setup']:<14}{r['per_second']:>8.2f}{r['per_second'] / base:>9.2f}{r['cpu_ms_per_doc']:>12.0f}"
              f"{r['median_ms']:>11.0f}"
              f"{r['p99_ms']:>8.0f}{r['rss_start_mb']:>11.0f} → {r['rss_end_mb']:<6.0f}{r['peak_mb']:>9.0f}"
              f"{worker:>13}")  # fmt: skip
    (RESULTS / "certificate.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

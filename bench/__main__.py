"""`python -m bench [name …]`: run the benchmarks one after another, each in its own process.

Without names, every benchmark runs; `python -m bench latency stream` runs those two.
`--quick` runs the growth and fanout benchmarks at sizes that take minutes, not an hour.
Extra arguments for one benchmark: run its module directly (`python -m bench.bench_stream
--help`).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

BENCHMARKS = [
    "latency",  # e2e latency of `true` beside ssh and local spawn
    "throughput",  # 2,000 concurrent `true` commands
    "stream",  # seq 1 5000000 over SSE and /output beside ssh and local
    "memory",  # RSS of api and executor while streaming 1 GB
    "auth",
    "webhooks",
    "replay",
    "tracing",
    "growth",  # reading one run: empty store vs 1 M runs over 10 k projects
    "fanout",  # 500 SSE watchers of one run, 200 runs at once, 1 → 2 → 4 executors
]
SIZED = {"growth", "fanout"}  # take --quick


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    chosen = [arg for arg in sys.argv[1:] if arg != "--quick"] or BENCHMARKS
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    for name in chosen:
        module = f"bench.bench_{name}"
        if importlib.util.find_spec(module) is None:
            print(f"\n== {name}: not present, skipped", flush=True)
            continue
        t0 = time.monotonic()
        extra = ["--quick"] if quick and name in SIZED else []
        code = subprocess.run([sys.executable, "-m", module, *extra], check=False).returncode
        print(f"== {name}: exit {code} after {time.monotonic() - t0:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""What every benchmark shares: a private rdev system, statistics, and the report table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from rdev_common.broker import free_port

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class System:
    """The whole system as `rdev up` starts it, in a temporary data dir, on a free port."""

    data_dir: Path
    port: int
    api_key: str
    process: subprocess.Popen[bytes]
    replicas: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout)

    def create_project(self, project_id: str) -> str:
        workdir = self.data_dir / "workspaces" / project_id
        workdir.mkdir(parents=True, exist_ok=True)
        with self.client() as c:
            r = c.post("/projects", json={"id": project_id, "workdir": str(workdir)})
            if r.status_code not in (201, 409):
                raise RuntimeError(f"creating project {project_id}: {r.status_code} {r.text}")
        return project_id

    def service_pid(self, service: str) -> int:
        """The pid of `python -m rdev_<service>` started by this system's `rdev up`
        (`nats-server`: its embedded broker), not one of `more_replicas`."""
        marker = str(self.data_dir).encode()
        ours = {p.pid for p in self.replicas.get(service, [])}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in ours:
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if service == "nats-server":
                if cmdline[0].endswith(b"/nats-server") and marker in b"".join(cmdline):
                    return int(entry.name)
            elif f"rdev_{service}".encode() in cmdline and marker in environ:
                return int(entry.name)
        raise RuntimeError(f"no {service} process of this system")

    def service_pids(self, service: str) -> list[int]:
        """`service_pid` and every replica this benchmark added (`more_replicas`)."""
        return [self.service_pid(service), *(p.pid for p in self.replicas.get(service, []))]

    @contextmanager
    def more_replicas(self, service: str, count: int, timeout: float = 60) -> Iterator[None]:
        """`count` more processes of `service` beside the one `rdev up` started, with its
        environment (another health port each), until the block ends."""
        env_bytes = Path(f"/proc/{self.service_pid(service)}/environ").read_bytes()
        env = dict(item.decode().split("=", 1) for item in env_bytes.split(b"\0") if b"=" in item)
        started = self.replicas.setdefault(service, [])
        ports = []
        try:
            for _ in range(count):
                port = free_port()
                ports.append(port)
                with (self.data_dir / f"{service}-replica.log").open("ab") as log:
                    started.append(
                        subprocess.Popen(
                            [str(BIN / "python"), "-m", f"rdev_{service}"],
                            env={**env, "RDEV_HEALTH_PORT": str(port)},
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,  # `_stop` kills its group
                        )
                    )
            deadline = time.monotonic() + timeout
            for port in ports:
                while not _answers(f"http://127.0.0.1:{port}/readyz"):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"a {service} replica not ready after {timeout}s")
                    time.sleep(0.1)
            yield
        finally:
            for process in started:
                _stop(process)
            started.clear()

    def url(self, path: str) -> str:
        return self.base_url + path


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_ready(system: System, timeout: float, log_from: int = 0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if system.process.poll() is not None:
            raise RuntimeError(f"rdev up exited: {_log_tail(system.data_dir)}")
        # `rdev up` says so once the api and every service answer their /readyz.
        if b"rdev: up at" in (system.data_dir / "rdev-up.log").read_bytes()[log_from:]:
            return
        time.sleep(0.1)
    raise RuntimeError(f"rdev up not ready after {timeout}s: {_log_tail(system.data_dir)}")


def _log_tail(data_dir: Path) -> str:
    log = data_dir / "rdev-up.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.exists() else ""


@contextmanager
def rdev_system(data_dir: Path | None = None, **settings: str) -> Iterator[System]:
    """Start `rdev up` with benchmark-friendly settings; stop it (and its tree) on exit.
    With `data_dir`, the system keeps its store there (started again on the same store)."""
    with tempfile.TemporaryDirectory(prefix="rdev-bench-") as tmp:
        data_dir = data_dir or Path(tmp)
        port = free_port()
        key = "rdev_bench_" + os.urandom(12).hex()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
        env.update(
            {
                "RDEV_DATA_DIR": str(data_dir),
                "RDEV_PORT": str(port),
                "RDEV_BOOTSTRAP_KEY": key,
                # Benchmarks submit far faster than the default per-key limits allow.
                "RDEV_RATE_LIMIT_ENABLED": "false",
                "RDEV_OUTPUT_CAP_BYTES": str(4 * 1024**3),
                "PATH": f"{BIN}:{env.get('PATH', '')}",
            }
        )
        env.update(settings)
        with (data_dir / "rdev-up.log").open("ab") as log:
            log_from = log.tell()
            process = subprocess.Popen(
                [str(BIN / "rdev"), "up"],
                env=env,
                cwd=data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        system = System(data_dir, port, key, process)
        try:
            _wait_ready(system, 180, log_from)
            yield system
        except BaseException:
            print(f"rdev up log tail:\n{_log_tail(data_dir)}", file=sys.stderr)
            raise
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "runs": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "min_ms": min(ms),
        "max_ms": max(ms),
    }


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Report:
    """Rows of figures, printed as a table and saved as bench/results/<name>.json."""

    name: str
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    load_before: str = field(default_factory=load_average)

    def add(self, subject: str, figure: str, value: float | str, unit: str, note: str = "") -> None:
        row = {"subject": subject, "figure": figure, "value": value, "unit": unit, "note": note}
        self.rows.append(row)
        shown = str(value)
        if isinstance(value, float):
            shown = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        print(f"  {subject:<34} {figure:<22} {shown:>14} {unit:<10} {note}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def header(self) -> None:
        where = f"{self.started}, load {self.load_before}, {os.cpu_count()} cores"
        print(f"\n== {self.title} ({where})")
        print(f"  {'subject':<34} {'figure':<22} {'value':>14} {'unit':<10} note", flush=True)

    def save(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        body = {
            "name": self.name,
            "title": self.title,
            "started": self.started,
            "load_before": self.load_before,
            "load_after": load_average(),
            "cpus": os.cpu_count(),
            "rows": self.rows,
            "notes": self.notes,
        }
        path.write_text(json.dumps(body, indent=2) + "\n")
        print(f"  load after: {body['load_after']}; saved {path}", flush=True)
        return path


class RssSampler:
    """VmRSS of some processes every `interval` seconds, on a background thread."""

    def __init__(self, pids: dict[str, int], interval: float = 0.1) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            self.samples.append(
                (time.monotonic() - start, {n: rss_kib(p) for n, p in self.pids.items()})
            )
            self._stop.wait(self.interval)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

"""`rdev up`: the whole system in one supervised process tree, on embedded defaults."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rdev_cli import broker_identities
from rdev_cli.stop_budget import stop_budget_s
from rdev_common.broker import EmbeddedNats, free_port
from rdev_common.db.migrate import upgrade
from rdev_common.nats_auth import authorization_block
from rdev_common.settings import CommonSettings

SERVICES = ("api", "executor", "webhooks", "audit")
# Webhooks and audit work behind the command path (their events are already stored):
# on a small machine they yield the CPU to the api and the executor.
BACKGROUND = {"webhooks": 10, "audit": 10}
# Only these seal and open project secrets; the others never see the key.
SECRETS_KEY_HOLDERS = ("api", "executor")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Children get SIGTERM if `rdev up` itself dies, so nothing is orphaned."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def local_secrets_key(data_dir: Path) -> str:
    """The key that seals project secrets in the embedded broker: `secrets.key` in the
    data dir (0600), made on first start. The broker's data and the key live side by
    side here; a deployment keeps the key in its secret store instead.

    The file appears whole or not at all (written and synced under another name, then
    linked into place, which fails if another `rdev up` got there first; where the
    filesystem has no hard links, created exclusively), and a file that holds no
    well-formed key stops `rdev up` rather than leave secrets unsealed.
    """
    from rdev_common.sealing import KEY_FORM, Sealer, generate_key

    path = data_dir / "secrets.key"
    if not path.exists():
        _create_whole(path, generate_key() + "\n")
    if path.stat().st_mode & 0o077:
        print(f"rdev: {path} is readable by others; chmod 600 it", flush=True)
    try:
        key = path.read_text().strip()
        if "," in key or Sealer.from_setting(key) is None:
            raise ValueError
    except ValueError:  # UnicodeDecodeError included
        raise SystemExit(f"{path} must hold one key of {KEY_FORM}") from None
    return key


def _create_whole(path: Path, content: str) -> None:
    """Create `path` (0600) holding `content`, unless it exists by now."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:  # another `rdev up` made it first
            pass
        except OSError:  # no hard links here (vfat, some network filesystems)
            with contextlib.suppress(FileExistsError):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(content)
    finally:
        os.unlink(tmp)


@dataclass
class Backoff:
    """When a process that died is started again: 0.5 s, doubling to 30 s, back to
    0.5 s once it had run for a minute."""

    restarts: int = 0
    started_at: float = 0.0
    due: float | None = None  # when the next start is due; None while it runs

    def schedule(self, now: float) -> float:
        if now - self.started_at > 60:
            self.restarts = 0
        delay = min(30.0, 0.5 * float(2 ** min(self.restarts, 6)))
        self.restarts += 1
        self.due = now + delay
        return delay


@dataclass
class Child:
    name: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    backoff: Backoff = field(default_factory=Backoff)

    def start(self) -> None:
        niceness = BACKGROUND.get(self.name, 0)

        def setup() -> None:
            _die_with_parent()
            if niceness:
                os.nice(niceness)

        self.process = subprocess.Popen(
            [sys.executable, "-m", f"rdev_{self.name}"],
            env=self.env,
            preexec_fn=setup if sys.platform == "linux" else None,
        )
        self.backoff.started_at = time.monotonic()
        self.backoff.due = None


@dataclass
class Supervisor:
    settings: CommonSettings
    host: str
    port: int
    broker: EmbeddedNats | None = None
    broker_backoff: Backoff = field(default_factory=Backoff)
    children: list[Child] = field(default_factory=list)
    stopping: bool = False
    state_file: Path | None = None

    def start(self) -> None:
        self.settings.secrets_sealer()  # a malformed RDEV_SECRETS_KEY stops here, once
        data_dir = self.settings.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        nats_url = self.settings.nats_url
        identities: dict[str, str] = {}
        if not nats_url:
            identities = broker_identities.local_passwords(data_dir)
            self.broker = EmbeddedNats(data_dir / "nats", config=authorization_block(identities))
            nats_url = self.broker.start()
            self.broker_backoff.started_at = time.monotonic()
            print(f"rdev: embedded nats-server with JetStream at {nats_url}", flush=True)
        database_url = self.settings.resolved_database_url()
        upgrade(database_url)
        # A blank setting counts as unset: the data dir's key is used.
        setting = self.settings.secrets_key
        secrets_key = (
            setting.get_secret_value()
            if setting and self.settings.secrets_sealer()
            else local_secrets_key(data_dir)
        )
        env = {
            **os.environ,
            "RDEV_NATS_URL": nats_url,
            "RDEV_DATABASE_URL": database_url,
            "RDEV_DATA_DIR": str(data_dir),
            "RDEV_HOST": self.host,
            "RDEV_PORT": str(self.port),
        }
        for name in SERVICES:
            child_env = dict(env)
            child_env.pop("RDEV_SECRETS_KEY", None)
            if name in SECRETS_KEY_HOLDERS:
                child_env["RDEV_SECRETS_KEY"] = secrets_key
            if identities:  # the embedded broker: each service logs in as itself
                child_env.update(broker_identities.service_env(name, identities))
            if name != "api":
                child_env["RDEV_HEALTH_PORT"] = str(free_port())
            self.children.append(Child(name, child_env))
        for child in self.children:
            child.start()
        self._write_state(data_dir, nats_url)

    def _write_state(self, data_dir: Path, nats_url: str) -> None:
        """Where the CLI finds this system: `rdev status`, `rdev events` (no secrets)."""
        from rdev_cli.local import write_state

        health = {"api": f"http://{self.host}:{self.port}/readyz"}
        for child in self.children:
            if "RDEV_HEALTH_PORT" in child.env:
                health[child.name] = f"http://127.0.0.1:{child.env['RDEV_HEALTH_PORT']}/readyz"
        self.state_file = write_state(
            data_dir,
            {
                "pid": os.getpid(),
                "url": f"http://{self.host}:{self.port}",
                "nats_url": nats_url,
                "embedded_broker": self.broker is not None,
                "health": health,
            },
        )

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """True once the api and every other service answer their /readyz."""
        urls = [f"http://{self.host}:{self.port}/readyz"] + [
            f"http://127.0.0.1:{child.env['RDEV_HEALTH_PORT']}/readyz"
            for child in self.children
            if "RDEV_HEALTH_PORT" in child.env
        ]
        deadline = time.monotonic() + timeout_s
        while urls and time.monotonic() < deadline and not self.stopping:
            try:
                with urllib.request.urlopen(urls[0], timeout=1) as resp:  # noqa: S310 (http:// above)
                    if resp.status == 200:
                        urls.pop(0)
                        continue
            except OSError:
                pass
            time.sleep(0.1)
        return not urls

    def supervise(self) -> None:
        """Restart the embedded broker or a service that died, with back-off; return
        when asked to stop. Nothing here sleeps longer than a tick, so a stop request
        is seen at once even while a restart is pending."""
        while not self.stopping:
            now = time.monotonic()
            self._supervise_broker(now)
            for child in self.children:
                if child.process is None:
                    continue
                if child.backoff.due is None:
                    if child.process.poll() is not None:
                        delay = child.backoff.schedule(now)
                        print(
                            f"rdev: {child.name} exited with {child.process.returncode}; "
                            f"restarting in {delay:g}s",
                            flush=True,
                        )
                elif now >= child.backoff.due:
                    child.start()
            time.sleep(0.2)

    def _supervise_broker(self, now: float) -> None:
        """The embedded nats-server, restarted on its port and store like a service.
        Its exit is collected (poll) at once, so it never lingers as <defunct>; the
        services' clients reconnect to it on their own."""
        broker, backoff = self.broker, self.broker_backoff
        if broker is None or broker.process is None:
            return
        if backoff.due is None:
            if broker.process.poll() is not None:
                delay = backoff.schedule(now)
                print(
                    f"rdev: nats-server exited with {broker.process.returncode}; "
                    f"restarting in {delay:g}s",
                    flush=True,
                )
        elif now >= backoff.due:
            try:
                broker.start()
            except (RuntimeError, TimeoutError, OSError) as exc:
                broker.stop(kill=True)
                print(f"rdev: nats-server did not start again ({exc})", flush=True)
                backoff.schedule(time.monotonic())
                return
            backoff.started_at = time.monotonic()
            backoff.due = None
            print(f"rdev: nats-server restarted at {broker.url}", flush=True)

    def stop(self) -> None:
        """SIGTERM every service, SIGKILL one that outlives its stop budget (see
        `stop_budget_s`: the executor's derives from its kill grace, so it can end
        every run first), then stop the broker they were using."""
        self.stopping = True
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        live = [c for c in self.children if c.process and c.process.poll() is None]
        for child in live:
            assert child.process is not None
            if child.name in BACKGROUND:
                # Stopping is not background work: on a busy machine a niced service
                # would take seconds to be scheduled for it (raising the priority back
                # needs CAP_SYS_NICE; without it the service just stops more slowly).
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, child.process.pid, 0)
            child.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        for child in live:
            assert child.process is not None
            deadline = started + stop_budget_s(child.name, child.env)
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"rdev: {child.name} did not stop in time; killing it", flush=True)
                child.process.kill()
                child.process.wait()
        if self.broker is not None:
            self.broker.stop()


def up(host: str, port: int) -> int:
    settings = CommonSettings()
    supervisor = Supervisor(settings, host, port)

    def request_stop(signum: int, _frame: object) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        supervisor.start()
        if supervisor.wait_ready():
            key_file = Path(settings.data_dir).resolve() / "admin.key"
            print(
                f"rdev: up at http://{host}:{port} (admin key in {key_file} unless "
                "RDEV_BOOTSTRAP_KEY is set); Ctrl-C stops",
                flush=True,
            )
        elif not supervisor.stopping:
            print("rdev: not every service became ready; still trying", flush=True)
        supervisor.supervise()
    finally:
        supervisor.stop()
        print("rdev: stopped", flush=True)
    # Everything it started has exited and been collected: skip the interpreter's
    # teardown of the modules it loaded (a second on a busy machine) so the prompt
    # comes back at once.
    sys.stderr.flush()
    os._exit(0)

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
class Child:
    name: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0

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
        self.started_at = time.monotonic()


@dataclass
class Supervisor:
    settings: CommonSettings
    host: str
    port: int
    broker: EmbeddedNats | None = None
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

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
        """Restart a service that died, with back-off; return when asked to stop."""
        while not self.stopping:
            for child in self.children:
                if child.process is not None and child.process.poll() is not None:
                    code = child.process.returncode
                    backoff = min(30.0, 0.5 * 2 ** min(child.restarts, 6))
                    if time.monotonic() - child.started_at > 60:
                        child.restarts = 0
                    print(
                        f"rdev: {child.name} exited with {code}; restarting in {backoff:g}s",
                        flush=True,
                    )
                    time.sleep(backoff)
                    child.restarts += 1
                    if not self.stopping:
                        child.start()
            time.sleep(0.2)

    def stop(self, grace_s: float = 15.0) -> None:
        self.stopping = True
        live = [c.process for c in self.children if c.process and c.process.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in live:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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
    return 0

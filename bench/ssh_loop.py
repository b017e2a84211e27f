"""OpenSSH on loopback, started by the benchmark itself, for figures beside rdev's.

sshd runs as root from a private config: its own host key, one generated user key,
no PAM. Root's login shell is bash, which (Debian builds it with SSH_SOURCE_BASHRC)
sources ~/.bashrc for every command sshd runs; root's .bashrc here runs
`pyenv init`, which would add tens of milliseconds that have nothing to do with ssh.
`SetEnv HOME=<empty dir>` keeps every start-up file out of the ssh figure, as rdev
runs commands with `/bin/sh -c`, which reads none.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rdev_common.broker import free_port

SSHD = Path("/usr/sbin/sshd")

SSHD_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitUserRC no
PrintMotd no
PrintLastLog no
SetEnv HOME={dir}/home
MaxSessions 100
MaxStartups 100:30:200
"""


def unavailable() -> str | None:
    """Why the ssh figures cannot be taken here, or None when they can."""
    if not SSHD.exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "OpenSSH is not installed (apt-get install -y openssh-server openssh-client)"
    if os.geteuid() != 0:
        return "sshd must run as root to log in as root"
    return None


@dataclass
class LoopbackSsh:
    dir: Path
    port: int

    def base(self) -> list[str]:
        return [
            "ssh",
            "-p",
            str(self.port),
            "-i",
            str(self.dir / "user_key"),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
        ]

    def cold(self, command: str) -> list[str]:
        """A fresh connection: TCP, key exchange, auth, session, command."""
        return [*self.base(), "-o", "ControlPath=none", "root@127.0.0.1", command]

    def warm(self, command: str) -> list[str]:
        """A new session over the master connection (ControlMaster)."""
        return [*self.base(), "-o", f"ControlPath={self.dir}/mux", "root@127.0.0.1", command]

    def start_master(self) -> None:
        subprocess.run(
            [
                *self.base(),
                "-o",
                "ControlMaster=yes",
                "-o",
                f"ControlPath={self.dir}/mux",
                "-o",
                "ControlPersist=600",
                "-fN",
                "root@127.0.0.1",
            ],
            check=True,
            timeout=30,
        )

    def stop_master(self) -> None:
        subprocess.run(
            [*self.base(), "-o", f"ControlPath={self.dir}/mux", "-O", "exit", "root@127.0.0.1"],
            capture_output=True,
            timeout=30,
        )


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


@contextmanager
def loopback_ssh() -> Iterator[LoopbackSsh]:
    """sshd on a free loopback port, and a ControlMaster connection to it."""
    with tempfile.TemporaryDirectory(prefix="rdev-bench-ssh-") as tmp:
        d = Path(tmp)
        (d / "home").mkdir()
        _keygen(d / "host_key")
        _keygen(d / "user_key")
        (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
        port = free_port()
        (d / "sshd_config").write_text(SSHD_CONFIG.format(port=port, dir=d))
        # sshd refuses to start without its privilege-separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        sshd = subprocess.Popen(
            [str(SSHD), "-f", str(d / "sshd_config"), "-D", "-e"],
            stdout=subprocess.DEVNULL,
            stderr=(d / "sshd.log").open("wb"),
            start_new_session=True,
        )
        ssh = LoopbackSsh(d, port)
        try:
            _wait_port(port, sshd, d)
            ssh.start_master()
            yield ssh
        finally:
            ssh.stop_master()
            os.killpg(sshd.pid, signal.SIGTERM)
            sshd.wait(timeout=10)


def _wait_port(port: int, sshd: subprocess.Popen[bytes], d: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sshd.poll() is not None:
            raise RuntimeError(f"sshd exited: {(d / 'sshd.log').read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("sshd did not listen within 10 s")


def timed_runs(argv: list[str], runs: int) -> list[float]:
    """Wall time of `runs` sequential runs of argv, each checked for exit 0."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times

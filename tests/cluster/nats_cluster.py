"""Three nats-servers from the wheel, clustered over routes on loopback, JetStream on each.

Each node keeps its ports and store across restarts, so a node killed and started again
rejoins the cluster and catches up its stream replicas, as a StatefulSet pod does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdev_common.broker import free_port, nats_server_binary
from tests.support import wait_for

CLUSTER = "rdev-test"


@dataclass
class Node:
    name: str
    store: Path
    port: int = field(default_factory=free_port)
    route_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config(self, peers: list[Node]) -> str:
        routes = ", ".join(f"nats-route://127.0.0.1:{p.route_port}" for p in peers if p is not self)
        return f"""
server_name: {self.name}
listen: 127.0.0.1:{self.port}
http: 127.0.0.1:{self.http_port}
max_payload: 8MB
jetstream {{
  store_dir: "{self.store}"
  max_memory_store: 256MB
  max_file_store: 2GB
}}
cluster {{
  name: {CLUSTER}
  listen: 127.0.0.1:{self.route_port}
  routes: [{routes}]
  connect_retries: 120
}}
"""

    def start(self, peers: list[Node]) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        conf = self.store / "nats-server.conf"
        conf.write_text(self.config(peers))
        log = (self.store / "nats-server.log").open("ab")
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the node vanishes mid-write, as a crashed pod does."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown, as Kubernetes stops a pod in a rolling restart."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def monitor(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp)


@dataclass
class NatsCluster:
    root: Path
    size: int = 3
    nodes: list[Node] = field(init=False)

    def __post_init__(self) -> None:
        self.nodes = [Node(f"n{i + 1}", self.root / f"n{i + 1}") for i in range(self.size)]

    @property
    def url(self) -> str:
        """RDEV_NATS_URL: every node, comma-separated."""
        return ",".join(n.url for n in self.nodes)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def start(self) -> None:
        for node in self.nodes:
            node.start(self.nodes)
        self.wait_formed()
        dead = [n.name for n in self.nodes if not n.alive()]
        assert not dead, f"nats-server {dead} exited:\n{self.log_tail()}"

    def restart(self, node: Node) -> None:
        node.start(self.nodes)
        self.wait_formed()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    def wait_formed(self, timeout: float = 60) -> None:
        """Every live node sees the same JetStream meta leader and all its peers."""

        def formed() -> bool:
            leaders = set()
            for node in self.nodes:
                if not node.alive():
                    continue
                try:
                    jsz = node.monitor("/jsz")
                    routes = node.monitor("/routez")["num_routes"]
                except OSError:
                    return False
                leader = (jsz.get("meta_cluster") or {}).get("leader")
                live_peers = sum(1 for n in self.nodes if n.alive()) - 1
                if not leader or routes < live_peers:
                    return False
                leaders.add(leader)
            return len(leaders) == 1

        try:
            wait_for(formed, timeout, "the NATS cluster did not form", interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 20) -> str:
        tails = []
        for node in self.nodes:
            text = (node.store / "nats-server.log").read_text(errors="replace").splitlines()
            tails.append(f"--- {node.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(tails)

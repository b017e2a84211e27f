"""Fixtures of the cluster tests: a 3-node NATS cluster per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.nats_cluster import NatsCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    nats = NatsCluster(tmp_path_factory.mktemp("nats-cluster"))
    try:
        nats.start()
        yield nats
    finally:
        nats.stop()

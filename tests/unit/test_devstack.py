"""The launcher's pure parts: KRaft configuration and ids."""

from __future__ import annotations

import base64
from pathlib import Path

from tickwire.devstack import kafka, procs


def test_cluster_id_is_16_bytes_url_safe_base64() -> None:
    cid = kafka.cluster_id()
    assert len(cid) == 22
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_single_node_properties_use_rf_1() -> None:
    node = kafka.KafkaNode(1, 9092, 9093)
    props = kafka.server_properties(node, [node], Path("/data"), partitions=6)
    assert "controller.quorum.voters=1@127.0.0.1:9093" in props
    assert "default.replication.factor=1" in props
    assert "min.insync.replicas=1" in props
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:9092" in props


def test_three_nodes_use_rf_3_and_min_isr_2() -> None:
    nodes = [kafka.KafkaNode(i, 9000 + i, 9100 + i) for i in (1, 2, 3)]
    props = kafka.server_properties(nodes[1], nodes, Path("/d"), partitions=3)
    assert "node.id=2" in props
    assert "controller.quorum.voters=1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103" in props
    assert "default.replication.factor=3" in props
    assert "min.insync.replicas=2" in props
    assert "transaction.state.log.min.isr=2" in props


def test_free_port_is_not_listening() -> None:
    port = procs.free_port()
    assert 0 < port < 65536
    assert not procs.port_open("127.0.0.1", port)

"""Kafka's storage tool accepts every cluster id the launcher can generate, including
the one in 64 that starts with `-` (it once failed a CI run as an unknown option)."""

from __future__ import annotations

from pathlib import Path

from tickwire.devstack import kafka


def test_storage_formats_with_a_cluster_id_starting_with_a_dash(tmp_path: Path) -> None:
    libs = kafka.resolve_jars()
    node = kafka.KafkaNode(1, 19092, 19093)
    config = tmp_path / "server.properties"
    config.write_text(kafka.server_properties(node, [node], tmp_path / "data", partitions=1))
    log4j = tmp_path / "log4j2.properties"
    log4j.write_text(kafka.LOG4J2)
    cid = "-" + kafka.cluster_id()[1:]
    kafka.format_storage(libs, config, cid, log4j)
    meta = (tmp_path / "data" / "meta.properties").read_text()
    assert f"cluster.id={cid}" in meta

"""The launcher's pure parts: KRaft configuration and ids."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tickwire.devstack import ferretdb, kafka, paths, postgres, procs
from tickwire.devstack.errors import StackError
from tickwire.devstack.stack import Stack


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


def test_a_proxied_node_listens_on_its_port_and_advertises_its_proxy() -> None:
    node = kafka.KafkaNode(1, 9092, 9093, proxy_port=19092)
    props = kafka.server_properties(node, [node], Path("/data"), partitions=6)
    assert "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093" in props
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:19092" in props
    assert node.address == "127.0.0.1:19092"  # what clients bootstrap with


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


def test_ferretdb_runs_on_postgresql_when_given_its_url_else_on_sqlite(tmp_path: Path) -> None:
    lite = ferretdb.argv(Path("/bin/ferretdb"), 27017, 8088, tmp_path)
    assert "--handler=sqlite" in lite
    assert f"--sqlite-url=file:{tmp_path}/" in lite
    pg = ferretdb.argv(Path("/bin/ferretdb"), 27017, 8088, tmp_path, postgres.url(5432))
    assert "--handler=postgresql" in pg
    assert not any(a.startswith("--sqlite-url") for a in pg)
    # the pool FerretDB gets must fit in PostgreSQL's connections, and be far above
    # what a few writers' commands of 20 statements hold at once
    assert (
        f"--postgresql-url=postgres://tickwire@127.0.0.1:5432/postgres?pool_max_conns={postgres.POOL}"
        in pg
    )
    server = postgres.argv(Path("/pg/bin"), tmp_path / "data", 5432)
    assert f"max_connections={postgres.POOL + 20}" in server
    assert "listen_addresses=127.0.0.1" in server
    assert "unix_socket_directories=" in server


def test_postgres_runs_unprivileged_when_the_launcher_is_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    argv = postgres.unprivileged(["/pg/bin/postgres", "-D", "/d"])
    assert argv[1:5] == ["--user", "--map-user=65534", "--map-group=65534", "/pg/bin/postgres"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert postgres.unprivileged(["/pg/bin/postgres"]) == ["/pg/bin/postgres"]


def test_the_store_is_chosen_by_flag_or_environment_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TICKWIRE_STACK_STORE", raising=False)
    assert paths.default_store() == paths.DEFAULT_STORE == "postgresql"
    monkeypatch.setenv("TICKWIRE_STACK_STORE", "sqlite")
    assert paths.default_store() == "sqlite"
    monkeypatch.setenv("TICKWIRE_STACK_STORE", "oracle")
    with pytest.raises(StackError, match="unknown store 'oracle'"):
        Stack(tmp_path).up()
    plan = Stack(tmp_path)._plan(1, None, None, 3, "postgresql")
    assert plan.store == "postgresql"
    assert plan.postgres_port > 0
    assert Stack(tmp_path)._plan(1, None, None, 3, "sqlite").postgres_port == 0


def test_a_cache_entry_is_filled_by_one_process_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two stacks starting at once (two checkouts' tests) once raced on FerretDB's build
    # directory; while one holds an entry's lock, another process cannot take it
    monkeypatch.setenv("TICKWIRE_CACHE_DIR", str(tmp_path))
    probe = (
        "import fcntl, sys\n"
        "h = open(sys.argv[1], 'w')\n"
        "try:\n"
        "    fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    lock_file = str(tmp_path / ".ferretdb-x.lock")
    with paths.cache_lock("ferretdb-x"):
        held = subprocess.run([sys.executable, "-c", probe, lock_file], check=False)
    free = subprocess.run([sys.executable, "-c", probe, lock_file], check=False)
    assert held.returncode == 3
    assert free.returncode == 0

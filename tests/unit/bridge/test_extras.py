"""`tickwire-stack up --with`: the registry of optional servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwire.devstack import extras
from tickwire.devstack.errors import StackError
from tickwire.devstack.rabbitmq import RabbitServer, node_name, url


def test_with_names_known_servers_in_order_once() -> None:
    assert extras.parse("rabbitmq, redis,rabbitmq") == ["rabbitmq", "redis"]
    assert extras.parse(None) == []
    assert extras.parse("") == []


def test_with_refuses_an_unknown_server_naming_the_choices() -> None:
    with pytest.raises(StackError, match=r"unknown --with kafka2: choose from rabbitmq, redis"):
        extras.parse("rabbitmq,kafka2")


def test_rabbitmq_entry_builds_the_node_of_its_folder(tmp_path: Path) -> None:
    entry = extras.EXTRAS["rabbitmq"]
    assert entry.env_var == "TICKWIRE_RABBITMQ_URL"
    server = entry.server(tmp_path / "rabbitmq", 5999)
    assert isinstance(server, RabbitServer)
    assert server.url == url(5999) == "amqp://guest:guest@127.0.0.1:5999/"
    assert server.pid_file == tmp_path / "rabbitmq" / "rabbitmq.pid"  # Stack.down finds it
    assert node_name(5999) == "tickwire5999@localhost"  # the same across restarts

"""The optional servers a stack starts when asked: `tickwire-stack up --with rabbitmq,redis`.

Each extra is one entry of `EXTRAS`: its name (also its folder under the stack
directory, and its pid file `<name>/<name>.pid`, which `Stack.down` stops with the
rest), the environment variable `tickwire-stack env` exports its URL as, and a factory
of the server object that starts, probes and stops it. Adding one is one entry here
and a module with such a server class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tickwire.devstack.errors import StackError
from tickwire.devstack.paths import default_stack_dir
from tickwire.devstack.rabbitmq import RabbitServer
from tickwire.devstack.redis import RedisServer


class ExtraServer(Protocol):
    """What the stack needs of an optional server (see `RabbitServer`, `RedisServer`)."""

    port: int

    @property
    def url(self) -> str: ...

    @property
    def log(self) -> Path: ...

    def running(self) -> bool: ...

    def start(self) -> object: ...

    def stop(self, kill: bool = False) -> bool: ...


@dataclass(frozen=True)
class Extra:
    """One optional server a stack can start (see the module docstring)."""

    name: str
    env_var: str
    server: Callable[[Path, int], ExtraServer]  # (its folder, its port; 0 = pick one)


EXTRAS: dict[str, Extra] = {
    e.name: e
    for e in (
        Extra("rabbitmq", "TICKWIRE_RABBITMQ_URL", RabbitServer),
        Extra("redis", "TICKWIRE_REDIS_URL", RedisServer),
    )
}


def parse(option: str | None) -> list[str]:
    """The extras named by a `--with a,b` option, in order, checked against `EXTRAS`."""
    names = [n.strip() for n in (option or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in EXTRAS]
    if unknown:
        raise StackError(f"unknown --with {', '.join(unknown)}: choose from {', '.join(EXTRAS)}")
    return list(dict.fromkeys(names))


@contextlib.contextmanager
def shared_or_own(name: str, own_dir: Path) -> Iterator[ExtraServer]:
    """The default stack's server `name` when that stack runs it (`up --with name`),
    else one of our own in own_dir, stopped afterwards (tests, benchmarks)."""
    from tickwire.devstack.stack import Stack  # the stack imports this registry

    stack = Stack(default_stack_dir())
    info = stack.info()
    if info is not None and name in info.extras and stack.status()["up"]:
        yield stack.extra_server(name)
        return
    own = EXTRAS[name].server(own_dir, 0)
    own.start()
    try:
        yield own
    finally:
        own.stop()

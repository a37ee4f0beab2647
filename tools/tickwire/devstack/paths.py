"""Where the launcher keeps downloads (a cache outside the source tree) and where a
running stack keeps its configs, data, logs and pids (one known directory)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
KAFKA_POM = REPO_ROOT / "deploy" / "local" / "kafka" / "pom.xml"
KAFKA_VERSION = "4.1.1"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_VERSION = "v2.12.0"


def cache_dir() -> Path:
    """Downloaded jars and built binaries; shared by every stack on the machine."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tickwire"
    return Path(os.environ.get("TICKWIRE_CACHE_DIR", default))


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock on one cache entry while it is filled, so concurrent stacks
    on the machine (two checkouts' tests, a bench beside them) build it once: every
    caller checks for the finished entry again once it holds the lock."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def default_stack_dir() -> Path:
    """The directory of the stack that `make stack-up` manages."""
    return Path(os.environ.get("TICKWIRE_STACK_DIR", cache_dir() / "stack"))


#: FerretDB's backends; the default is the one measured faster for the processor's
#: writes and the query API (bench/store.py, docs/benchmarks.md).
STORES = ("postgresql", "sqlite")
DEFAULT_STORE = "postgresql"


def default_store() -> str:
    """The backend a new stack uses: $TICKWIRE_STACK_STORE, else DEFAULT_STORE."""
    return os.environ.get("TICKWIRE_STACK_STORE", DEFAULT_STORE)

"""FerretDB v1 (MongoDB wire protocol on SQLite or PostgreSQL), built from its Go module
into the cache.

`go install ...@v1.24.2` alone yields a binary that panics at start, because the module
ships an empty build/version/version.txt; so the launcher copies the module source from
the Go module cache, writes the version file, and builds it with `go build`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tickwire.devstack.errors import StartupError
from tickwire.devstack.paths import FERRETDB_MODULE, FERRETDB_VERSION, cache_dir, cache_lock
from tickwire.devstack.tools import require


def binary_path() -> Path:
    """Where the built FerretDB binary is cached."""
    return cache_dir() / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"


def build() -> Path:
    """Build FerretDB once into the cache; later calls return the cached binary."""
    binary = binary_path()
    if binary.exists():
        return binary
    with cache_lock(binary.parent.name):
        if not binary.exists():  # not built by whoever held the lock before
            _build(binary)
    return binary


def _build(binary: Path) -> None:
    go = require("go")
    print(
        f"[stack] building FerretDB {FERRETDB_VERSION} with Go into {binary.parent} "
        "(first run only, a few minutes)...",
        flush=True,
    )
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if download.returncode != 0:
        raise StartupError(f"go mod download failed: {download.stdout}{download.stderr}")
    module_dir = Path(json.loads(download.stdout)["Dir"])
    src = binary.parent / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(module_dir, src)
    for path in src.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
    print("[stack] compiling FerretDB (go build shows each module it downloads)...", flush=True)
    partial = binary.with_suffix(".partial")
    result = subprocess.run(
        [go, "build", "-o", str(partial), "./cmd/ferretdb"],
        cwd=src,
        env=env,
        check=False,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
    shutil.rmtree(src, ignore_errors=True)
    if result.returncode != 0:
        raise StartupError(f"building FerretDB failed (exit {result.returncode})")
    partial.rename(binary)  # whole or absent: `binary.exists()` means usable


def argv(
    binary: Path,
    port: int,
    debug_port: int,
    data_dir: Path,
    postgresql_url: str | None = None,
    tls: Path | None = None,
) -> list[str]:
    """The FerretDB command line for a server on 127.0.0.1:port, on the PostgreSQL at
    postgresql_url, or on SQLite files in data_dir without one. With `tls` (a PEM of
    key and certificate chain), it listens on TLS only; clients then authenticate with
    PLAIN and FerretDB hands their credentials to PostgreSQL, which checks them."""
    if postgresql_url is None:
        backend = ["--handler=sqlite", f"--sqlite-url=file:{data_dir}/"]
    else:
        backend = ["--handler=postgresql", f"--postgresql-url={postgresql_url}"]
    if tls is None:
        listen = [f"--listen-addr=127.0.0.1:{port}"]
    else:
        listen = [
            "--listen-addr=",
            f"--listen-tls=127.0.0.1:{port}",
            f"--listen-tls-cert-file={tls}",
            f"--listen-tls-key-file={tls}",
        ]
    return [
        str(binary),
        *backend,
        f"--state-dir={data_dir}",
        *listen,
        f"--debug-addr=127.0.0.1:{debug_port}",
        "--telemetry=disable",
        "--log-level=warn",
    ]


def wait_ready(
    url: str, log: Path, timeout: float = 60.0, options: dict[str, Any] | None = None
) -> None:
    """Block until the server answers a ping, or raise StartupError. `options`: the
    client's credentials and TLS (`MongoSecurity.options()`) on a secure stack."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client: MongoClient[dict[str, object]] = MongoClient(
            url, serverSelectionTimeoutMS=1000, **(options or {})
        )
        try:
            client.admin.command("ping")
            return
        except PyMongoError:
            time.sleep(0.3)
        finally:
            client.close()
    raise StartupError(f"FerretDB at {url} did not answer ping within {timeout:.0f}s; see {log}")

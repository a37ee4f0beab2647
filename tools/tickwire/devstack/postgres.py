"""PostgreSQL for FerretDB's `postgresql` handler: Debian's server binaries, one cluster
per stack directory (`postgres/data`), listening on 127.0.0.1 only (no Unix socket).

PostgreSQL refuses to run as root. As root, the launcher runs `initdb` and `postgres`
in a new user namespace (`unshare --user`) that maps the caller to an unprivileged
user: inside, the server is not root and holds no capability on the machine, and the
files it writes under the stack directory stay the caller's, so `down --wipe` removes
them. As any other user it runs the binaries directly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from tickwire.devstack.errors import MissingToolError, StartupError

PREFERRED_MAJOR = 15
USER = "tickwire"
DATABASE = "postgres"
#: uid/gid the server runs as inside its user namespace when the launcher is root
#: (nobody/nogroup: owns nothing on the machine).
UNPRIVILEGED_ID = 65534
#: FerretDB's connection pool to PostgreSQL. FerretDB v1 holds one pooled connection per
#: statement of a command until the whole command ends, and a command that needs more
#: than the pool has waits forever (its default pool is 50: four writers of 20 upserts
#: wedge it; bench/store.py shows it). PostgreSQL gets room for the pool and a few more.
POOL = 400
INSTALL_HINT = (
    f"install PostgreSQL {PREFERRED_MAJOR} (Debian: apt-get install postgresql-{PREFERRED_MAJOR};"
    " `make postgres` does it)"
)


def bin_dir() -> Path:
    """The directory holding initdb and postgres: $TICKWIRE_POSTGRES_BIN, Debian's
    /usr/lib/postgresql/<major>/bin (15 first, else the newest), or pg_config's."""
    override = os.environ.get("TICKWIRE_POSTGRES_BIN")
    candidates = [Path(override)] if override else []
    debian = Path("/usr/lib/postgresql")
    majors = sorted(
        (p for p in debian.glob("*/bin") if re.fullmatch(r"\d+", p.parent.name)),
        key=lambda p: (int(p.parent.name) != PREFERRED_MAJOR, -int(p.parent.name)),
    )
    candidates += majors
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in ("postgres", "initdb", "pg_isready")):
            return candidate
    raise MissingToolError(f"PostgreSQL server binaries were not found: {INSTALL_HINT}")


def unprivileged(argv: list[str]) -> list[str]:
    """argv run as a user that is not root (see the module docstring)."""
    if os.geteuid() != 0:
        return argv
    unshare = shutil.which("unshare")
    if unshare is None:
        raise MissingToolError("'unshare' (util-linux) is needed to run PostgreSQL as root")
    ids = str(UNPRIVILEGED_ID)
    return [unshare, "--user", f"--map-user={ids}", f"--map-group={ids}", *argv]


def init_cluster(bindir: Path, data_dir: Path, log: Path) -> None:
    """Create the cluster once (a data directory that has PG_VERSION is kept)."""
    if (data_dir / "PG_VERSION").exists():
        return
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    argv = [
        str(bindir / "initdb"),
        f"--pgdata={data_dir}",
        f"--username={USER}",
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
        "--no-instructions",
    ]
    with open(log, "ab") as out:
        result = subprocess.run(
            unprivileged(argv), stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        raise StartupError(f"initdb failed (exit {result.returncode}); see {log}")


def argv(bindir: Path, data_dir: Path, port: int) -> list[str]:
    """The server's command line: TCP on 127.0.0.1:port only, settings for a local
    single-user store (durable commits kept: the processor commits Kafka offsets on
    the strength of an acknowledged write)."""
    return unprivileged(
        [
            str(bindir / "postgres"),
            "-D",
            str(data_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={port}",
            "-c",
            "unix_socket_directories=",
            "-c",
            f"max_connections={POOL + 20}",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "logging_collector=off",
        ]
    )


def url(port: int) -> str:
    """The URL FerretDB's postgresql handler connects with, with its pool of POOL."""
    return f"postgres://{USER}@127.0.0.1:{port}/{DATABASE}?pool_max_conns={POOL}"


def wait_ready(bindir: Path, port: int, log: Path, timeout: float = 60.0) -> None:
    """Block until the server accepts connections (pg_isready), or raise StartupError."""
    check = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", USER]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(check, check=False).returncode == 0:
            return
        time.sleep(0.2)
    raise StartupError(
        f"PostgreSQL on 127.0.0.1:{port} did not start within {timeout:.0f}s; see {log}"
    )

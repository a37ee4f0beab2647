"""PostgreSQL for FerretDB's `postgresql` handler: Debian's server binaries, one cluster
per stack directory (`postgres/data`), listening on 127.0.0.1 only (no Unix socket).

PostgreSQL refuses to run as root. As root, the launcher runs `initdb` and `postgres`
in a new user namespace (`unshare --user`) that maps the caller to an unprivileged
user: inside, the server is not root and holds no capability on the machine, and the
files it writes under the stack directory stay the caller's, so `down --wipe` removes
them. As any other user it runs the binaries directly.

Making FerretDB v1's reads use indexes (the one place that relies on FerretDB's
internals; tests/integration/test_postgres_indexes.py fails if they change): FerretDB
keeps each collection in a table with one `jsonb` column, `_jsonb`, and pushes a
top-level equality filter down as `_jsonb->$1 @> $2`. Its own indexes are b-trees on
`(_jsonb->'field')`, which `@>` cannot use, so every read and every update by `_id`
was a sequential scan of the whole collection. `INDEX_SQL` adds an event trigger that
gives every new FerretDB table a GIN index on `(_jsonb->'_id')` and `(_jsonb->'symbol')`
(and indexes the tables that exist), and the server runs with
`plan_cache_mode=force_custom_plan`, so FerretDB's prepared statements are planned with
their parameters and can use those indexes. Measured on 5,000 documents of 8 kB: a
`find_one` by `_id` went from 10.2 to 1.0 ms (p50), a replace from 11.5 to 1.9 ms.
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
        tools = ("postgres", "initdb", "pg_isready", "psql")
        if all((candidate / tool).is_file() for tool in tools):
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


def init_cluster(bindir: Path, data_dir: Path, log: Path, password: Path | None = None) -> None:
    """Create the cluster once (a data directory that has PG_VERSION is kept). With a
    password file, USER needs that password (SCRAM-SHA-256) on every connection."""
    if (data_dir / "PG_VERSION").exists():
        return
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    argv = [
        str(bindir / "initdb"),
        f"--pgdata={data_dir}",
        f"--username={USER}",
        *(["--auth=scram-sha-256", f"--pwfile={password}"] if password else ["--auth=trust"]),
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
            "-c",
            "plan_cache_mode=force_custom_plan",
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


#: The GIN indexes every FerretDB table gets (see the module docstring): on `_id` for
#: every point read and update, on `symbol` for the bars history.
INDEX_SQL = """
CREATE OR REPLACE FUNCTION tickwire_index_jsonb(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  field text;
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_attribute
    WHERE attrelid = tbl AND attname = '_jsonb' AND NOT attisdropped
  ) THEN
    RETURN;
  END IF;
  FOREACH field IN ARRAY ARRAY['_id', 'symbol'] LOOP
    EXECUTE format(
      'CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((_jsonb -> %L))',
      left((SELECT relname FROM pg_class WHERE oid = tbl), 40)
        || '_twgin_' || left(md5(field), 8),
      tbl,
      field
    );
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION tickwire_index_new_tables() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  obj record;
BEGIN
  FOR obj IN
    SELECT objid FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE'
  LOOP
    PERFORM tickwire_index_jsonb(obj.objid::regclass);
  END LOOP;
END $$;

DROP EVENT TRIGGER IF EXISTS tickwire_index_new_tables;
CREATE EVENT TRIGGER tickwire_index_new_tables ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION tickwire_index_new_tables();

SELECT tickwire_index_jsonb(c.oid::regclass)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema');
"""


def install_indexing(bindir: Path, port: int, log: Path, password: Path | None = None) -> None:
    """Install INDEX_SQL (idempotent); StartupError if psql fails."""
    argv = [
        str(bindir / "psql"),
        "-h", "127.0.0.1", "-p", str(port), "-U", USER, "-d", DATABASE,
        "-v", "ON_ERROR_STOP=1", "-q", "-c", INDEX_SQL,
    ]  # fmt: skip
    with open(log, "ab") as out:
        env = {**os.environ, "PGPASSWORD": password.read_text()} if password else None
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, env=env)
    if result.returncode != 0:
        raise StartupError(f"installing the jsonb indexing failed; see {log}")

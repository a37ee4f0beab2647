"""FerretDB on PostgreSQL reads through indexes (tickwire.devstack.postgres): every
table FerretDB creates gets GIN indexes on `(_jsonb->'_id')` and `(_jsonb->'symbol')`,
and the filter FerretDB pushes down for an equality (`_jsonb->$1 @> $2`) is planned to
use them. This relies on FerretDB v1 internals (its table layout, the SQL it emits);
when an upgrade changes them this test fails and says which."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tickwire.devstack import postgres
from tickwire.devstack.stack import Stack


def _psql(port: int, sql: str) -> str:
    argv = [str(postgres.bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-U", postgres.USER, "-d", postgres.DATABASE, "-At", "-v", "ON_ERROR_STOP=1"]
    result = subprocess.run([*argv, "-c", sql], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.timeout(300)
async def test_ferretdb_tables_get_gin_indexes_and_its_pushed_down_filters_use_them(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path / "stack")
    info = await asyncio.to_thread(stack.up, 1, store="postgresql")
    client: AsyncMongoClient[Any] = AsyncMongoClient(info.mongodb_url)
    try:
        port = info.postgres_port
        assert port is not None
        things = client["twidx"]["things"]
        await things.insert_many(
            [{"_id": f"k{i}", "symbol": f"S{i % 50}", "v": i} for i in range(2000)]
        )
        tables = _psql(
            port,
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = '_jsonb' "
            "WHERE n.nspname = 'twidx' AND c.relkind = 'r' AND c.relname LIKE 'things%'",
        ).split()
        assert len(tables) == 1, f"FerretDB's table layout changed: {tables}"
        table = f"twidx.{tables[0]}"
        defs = _psql(
            port,
            "SELECT indexdef FROM pg_indexes "
            f"WHERE schemaname = 'twidx' AND tablename = '{tables[0]}'",
        )
        for field in ("_id", "symbol"):
            assert f"USING gin (((_jsonb -> '{field}'::text)))" in defs, defs

        # FerretDB's own statement for a find by _id, as the server logs it
        log = tmp_path / "stack" / "postgres" / "postgres.log"
        _psql(port, "ALTER SYSTEM SET log_min_duration_statement = 0")
        _psql(port, "SELECT pg_reload_conf()")
        assert (await things.find_one({"_id": "k7"}) or {}).get("v") == 7
        _psql(port, "ALTER SYSTEM RESET log_min_duration_statement")
        _psql(port, "SELECT pg_reload_conf()")
        statements = [line for line in log.read_text().splitlines() if tables[0] in line]
        assert any("WHERE _jsonb->$1 @> $2" in line for line in statements), (
            f"FerretDB no longer pushes an equality down as `_jsonb->$1 @> $2`: {statements[-3:]}"
        )

        # planned with its parameters (force_custom_plan), that filter uses the index
        _psql(port, f"ANALYZE {table}")
        plan = json.loads(_explain(port, table))
        assert "twgin" in json.dumps(plan), plan
        assert _psql(port, "SHOW plan_cache_mode") == "force_custom_plan"
    finally:
        await client.close()
        await asyncio.to_thread(stack.down)


def _explain(port: int, table: str) -> str:
    out = _psql(
        port,
        f"PREPARE q(text, jsonb) AS SELECT _jsonb FROM {table} WHERE _jsonb->$1 @> $2; "
        "EXPLAIN (FORMAT JSON) EXECUTE q('_id', '\"k7\"')",
    )
    return out[out.index("[") :]

"""`python -m tickwire.ingest.keys new --key-id feed-a [...]`: make a new API key.

Prints the key once (give it to the producer; it is not stored anywhere) and the entry
to add to the keys file (it holds only the key's SHA-256 digest).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys

from tickwire.ingest.auth import KeyEntry, Scopes, digest


def new_key() -> str:
    """A fresh key: 256 random bits, URL-safe, with a recognizable prefix."""
    return "tw_" + secrets.token_urlsafe(32)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the keys CLI."""
    parser = argparse.ArgumentParser(prog="python -m tickwire.ingest.keys")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="print a new key and its hashed entry")
    new.add_argument("--key-id", required=True, help="the producer's name, e.g. feed-nyse")
    new.add_argument("--types", default="trade,quote", help="comma-separated event types")
    new.add_argument("--symbols", default="*", help="comma-separated symbol globs")
    new.add_argument("--rate", type=float, default=0.0, help="events/s, 0 = unlimited")
    new.add_argument("--burst", type=float, default=None, help="token bucket size")
    args = parser.parse_args(argv)

    key = new_key()
    entry = KeyEntry.model_validate(
        {
            "key_id": args.key_id,
            "sha256": digest(key),
            "scopes": Scopes.model_validate(
                {"types": args.types.split(","), "symbols": args.symbols.split(",")}
            ),
            "rate": args.rate,
            "burst": args.burst,
        }
    )
    sys.stdout.write(f"key (give it to the producer; it is shown only once):\n{key}\n\n")
    sys.stdout.write('entry (add it to the keys file\'s "keys" list):\n')
    printed = entry.model_dump(exclude_none=True, exclude={"revoked"})  # a new key is live
    sys.stdout.write(json.dumps(printed, indent=2) + "\n")


if __name__ == "__main__":
    main()

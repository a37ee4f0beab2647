"""`tickwire-stack up|down|status|env`: the local Kafka + FerretDB stack, no Docker.

tickwire-stack up [--brokers 3] [--kafka-port 9092] [--mongo-port 27017]
                  [--store postgresql|sqlite]   # FerretDB's backend ($TICKWIRE_STACK_STORE)
                  [--secure]                    # Kafka over SASL_SSL (TLS + SCRAM/PLAIN)
                  [--proxied]                   # Kafka only through Toxiproxy (fault tests)
                  [--with rabbitmq,redis]       # optional servers (extras.py)
tickwire-stack status [--json]
tickwire-stack env          # shell exports for TICKWIRE_KAFKA_BOOTSTRAP etc.
tickwire-stack down [--wipe]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tickwire.devstack import extras
from tickwire.devstack.errors import StackError
from tickwire.devstack.paths import DEFAULT_STORE, STORES, default_stack_dir
from tickwire.devstack.stack import Stack


def _print_status(status: dict[str, object]) -> None:
    print(f"stack dir:          {status['stack_dir']}")
    if not status.get("components"):
        print("state:              not started (run `make stack-up`)")
        return
    print(f"state:              {'up' if status['up'] else 'DOWN or partly down'}")
    print(f"bootstrap servers:  {status['bootstrap_servers']}")
    print(f"MongoDB URL:        {status['mongodb_url']}")
    print(f"store:              FerretDB on {status['store']}")
    if status.get("toxiproxy_url"):
        print(f"Toxiproxy API:      {status['toxiproxy_url']} (Kafka only through it)")
    if status.get("secure"):
        print("Kafka security:     SASL_SSL (TLS + SCRAM-SHA-512); `env` prints the settings")
    urls = status.get("extras")
    if isinstance(urls, dict):
        for name, url in urls.items():
            print(f"{name + ':':<20}{url}")
    components = status["components"]
    assert isinstance(components, dict)
    for name, comp in components.items():
        state = "up" if comp["up"] else "down"
        print(f"  {name:<10} {comp['address']:<18} {state:<5} log: {comp['log']}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the launcher CLI."""
    parser = argparse.ArgumentParser(
        prog="tickwire-stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="stack directory (default $TICKWIRE_STACK_DIR or the cache)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Kafka and FerretDB and wait until they answer")
    up.add_argument("--brokers", type=int, default=1, choices=(1, 3))
    up.add_argument("--kafka-port", type=int, default=None)
    up.add_argument("--mongo-port", type=int, default=None)
    up.add_argument("--partitions", type=int, default=6)
    up.add_argument(
        "--secure",
        action="store_true",
        help="a new stack's Kafka listens only on SASL_SSL: TLS with the stack's own CA "
        "and SASL (SCRAM-SHA-512/256, PLAIN); `env` prints the client settings",
    )
    up.add_argument(
        "--proxied",
        action="store_true",
        help="a new stack's Kafka is reachable only through Toxiproxy (one proxy per node, "
        "which the broker advertises); `env` prints TOXIPROXY_URL, its API",
    )
    up.add_argument(
        "--store",
        choices=STORES,
        default=None,
        help="FerretDB's backend for a new stack (default $TICKWIRE_STACK_STORE or "
        f"{DEFAULT_STORE})",
    )
    up.add_argument(
        "--with",
        dest="extras",
        default=None,
        metavar="NAME[,NAME]",
        help=f"also start optional servers: {', '.join(extras.EXTRAS)}",
    )
    status = sub.add_parser("status", help="print endpoints, log paths and liveness")
    status.add_argument("--json", action="store_true")
    sub.add_parser("env", help="print shell exports of the endpoints")
    run = sub.add_parser("run", help="the whole system live: stack, services, simulator")
    run.add_argument("--rate", type=float, default=200.0, help="simulated events per second")
    down = sub.add_parser("down", help="stop everything the stack started")
    down.add_argument("--wipe", action="store_true", help="also delete data and logs")
    args = parser.parse_args(argv)

    stack = Stack(args.dir or default_stack_dir())
    try:
        if args.command == "up":
            started = time.monotonic()
            stack.up(
                args.brokers,
                args.kafka_port,
                args.mongo_port,
                args.partitions,
                args.store,
                extras.parse(args.extras),
                secure=args.secure,
                proxied=args.proxied,
            )
            print(f"[stack] up in {time.monotonic() - started:.1f}s", flush=True)
            _print_status(stack.status())
        elif args.command == "status":
            st = stack.status()
            if args.json:
                print(json.dumps(st, indent=2))
            else:
                _print_status(st)
            return 0 if st["up"] else 3
        elif args.command == "env":
            info = stack.info()
            if info is None or not stack.status()["up"]:
                print("stack is not up; run `make stack-up`", file=sys.stderr)
                return 3
            print(f"export TICKWIRE_KAFKA_BOOTSTRAP={info.bootstrap_servers}")
            print(f"export TICKWIRE_MONGODB_URL={info.mongodb_url}")
            for name, value in stack.security_env().items():
                print(f"export {name}={value}")
            if info.toxiproxy_port:
                print(f"export TOXIPROXY_URL={stack.toxiproxy().url}")
            for name in info.extras:
                print(f"export {extras.EXTRAS[name].env_var}={stack.extra_server(name).url}")
        elif args.command == "run":
            from tickwire.devstack import run as run_module

            return run_module.main(rate=args.rate)
        elif args.command == "down":
            stopped = stack.down(wipe=args.wipe)
            print(f"[stack] stopped: {', '.join(stopped) or 'nothing was running'}")
    except KeyboardInterrupt:
        print("\n[stack] interrupted; stopped what was started", file=sys.stderr)
        return 130
    except StackError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A local stack: N Kafka KRaft nodes and one FerretDB (on PostgreSQL, or on SQLite),
all under one directory.

Layout of a stack directory:

    stack.json              endpoints, ports, node ids and the store (what `status` prints)
    kafka-<id>/             server.properties, data/, kafka.log, kafka.pid
    tls/                    a secure stack's CA, certificates and passwords (`up
                            --secure`: Kafka on SASL_SSL, kafka.Secure; FerretDB on
                            TLS only, its users checked by PostgreSQL with SCRAM)
    postgres/               data/, postgres.log, postgres.pid (store "postgresql" only)
    ferretdb/               data/ (SQLite files, or FerretDB's state), ferretdb.log,
                            ferretdb.pid
    toxiproxy/              a proxied stack's Toxiproxy (`up --proxied`): proxies.json
                            (one proxy per Kafka node), toxiproxy.log, toxiproxy.pid
    <extra>/                an optional server asked for with `up --with` (rabbitmq,
                            redis: see extras.py), <extra>.log, <extra>.pid

Tests make private stacks in temporary directories (e.g. to stop a broker mid-test);
`make stack-up` manages the default one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tickwire.devstack import certs, ferretdb, kafka, postgres, procs
from tickwire.devstack.errors import StackError, StartupError
from tickwire.devstack.extras import EXTRAS, ExtraServer
from tickwire.devstack.paths import STORES, default_store
from tickwire.devstack.toxiproxy import Proxy, ToxiproxyServer
from tickwire.kafka.security import PLAINTEXT, KafkaSecurity
from tickwire.mongo.security import NO_AUTH, MongoSecurity

#: The user services connect as on a secure stack, to Kafka (SASL; the brokers are user
#: `broker`) and to FerretDB (PLAIN over TLS, checked by PostgreSQL).
CLIENT_USER = "tickwire"


@dataclass
class StackInfo:
    """What a running stack exposes: the addresses clients need and where logs are."""

    bootstrap_servers: str
    mongodb_url: str
    kafka_nodes: list[dict[str, int]] = field(default_factory=list)
    mongo_port: int = 0
    cluster_id: str = ""
    partitions: int = 6
    store: str = "sqlite"  # FerretDB's backend; stacks recorded before it had SQLite
    postgres_port: int = 0
    secure: bool = False  # one SASL_SSL listener (TLS + SCRAM/PLAIN), see kafka.Secure
    extras: dict[str, int] = field(default_factory=dict)  # optional server -> its port
    toxiproxy_port: int = 0  # a proxied stack's Toxiproxy API (Kafka behind its proxies)


class Stack:
    """Start, inspect and stop the processes of one stack directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_file = root / "stack.json"

    # -- state ---------------------------------------------------------------------
    def info(self) -> StackInfo | None:
        """The recorded endpoints, if this directory holds a stack."""
        if not self.state_file.exists():
            return None
        return StackInfo(**json.loads(self.state_file.read_text()))

    def _nodes(self, info: StackInfo) -> list[kafka.KafkaNode]:
        return [kafka.KafkaNode(**n) for n in info.kafka_nodes]

    def kafka_dir(self, node_id: int) -> Path:
        return self.root / f"kafka-{node_id}"

    # -- security (a stack started with --secure) -------------------------------------
    def tls_files(self) -> certs.StackCerts:
        """The stack's CA and certificates (made on first use)."""
        return certs.make(self.root / "tls")

    def _password(self, user: str) -> Path:
        """The file holding a SASL user's password, made (random, 0600) on first use."""
        path = self.root / "tls" / f"{user}.password"
        if not path.exists():
            import secrets

            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(0o600)
            path.write_text(secrets.token_urlsafe(24))
        return path

    def _secure(self, info: StackInfo) -> kafka.Secure | None:
        if not info.secure:
            return None
        return kafka.Secure(
            tls=self.tls_files(),
            client_user=CLIENT_USER,
            client_password=self._password(CLIENT_USER).read_text(),
            broker_password=self._password("broker").read_text(),
        )

    def kafka_security(self) -> KafkaSecurity:
        """How a client connects to this stack's Kafka (SCRAM-SHA-512 when secure)."""
        info = self.info()
        if info is None or not info.secure:
            return PLAINTEXT
        return KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            username=CLIENT_USER,
            password=self._password(CLIENT_USER).read_text(),
            cafile=self.tls_files().ca,
        )

    def mongo_security(self) -> MongoSecurity:
        """How a client connects to this stack's FerretDB (PLAIN over TLS when secure)."""
        info = self.info()
        if info is None or not info.secure:
            return NO_AUTH
        return MongoSecurity(
            username=CLIENT_USER,
            password=self._password("mongodb").read_text(),
            auth_mechanism="PLAIN",
            tls=True,
            ca_file=self.tls_files().ca,
        )

    def security_env(self) -> dict[str, str]:
        """The TICKWIRE_KAFKA_* and TICKWIRE_MONGODB_* settings of a service connecting
        to this stack (passwords as files, as Kubernetes secrets are mounted)."""
        info = self.info()
        if info is None or not info.secure:
            return {}
        ca = str(self.tls_files().ca)
        return {
            "TICKWIRE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "TICKWIRE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "TICKWIRE_KAFKA_SASL_USERNAME": CLIENT_USER,
            "TICKWIRE_KAFKA_SASL_PASSWORD_FILE": str(self._password(CLIENT_USER)),
            "TICKWIRE_KAFKA_SSL_CAFILE": ca,
            "TICKWIRE_MONGODB_USERNAME": CLIENT_USER,
            "TICKWIRE_MONGODB_PASSWORD_FILE": str(self._password("mongodb")),
            "TICKWIRE_MONGODB_AUTH_MECHANISM": "PLAIN",
            "TICKWIRE_MONGODB_TLS": "true",
            "TICKWIRE_MONGODB_TLS_CA_FILE": ca,
        }

    def status(self) -> dict[str, Any]:
        """Endpoints, log paths and liveness of every component."""
        info = self.info()
        if info is None:
            return {"stack_dir": str(self.root), "up": False, "components": {}}
        components: dict[str, Any] = {}
        for node in self._nodes(info):
            d = self.kafka_dir(node.node_id)
            pid = procs.read_pid(d / "kafka.pid")
            components[f"kafka-{node.node_id}"] = {
                "address": node.address,
                "up": procs.alive(pid) and procs.port_open("127.0.0.1", node.port),
                "pid": pid,
                "log": str(d / "kafka.log"),
            }
        if info.store == "postgresql":
            components["postgres"] = self._component("postgres", info.postgres_port)
        components["ferretdb"] = self._component("ferretdb", info.mongo_port)
        if info.toxiproxy_port:
            components["toxiproxy"] = self._component("toxiproxy", info.toxiproxy_port)
        for name in info.extras:
            components[name] = self._component(name, info.extras[name])
        return {
            "stack_dir": str(self.root),
            "up": all(c["up"] for c in components.values()),
            "bootstrap_servers": info.bootstrap_servers,
            "mongodb_url": info.mongodb_url,
            "store": info.store,
            "secure": info.secure,
            "toxiproxy_url": self.toxiproxy().url if info.toxiproxy_port else None,
            "extras": {name: self.extra_server(name).url for name in info.extras},
            "components": components,
        }

    def _component(self, name: str, port: int) -> dict[str, Any]:
        """Liveness of the process `name/<name>.pid` listening on port."""
        pid = procs.read_pid(self.root / name / f"{name}.pid")
        return {
            "address": f"127.0.0.1:{port}",
            "up": procs.alive(pid) and procs.port_open("127.0.0.1", port),
            "pid": pid,
            "log": str(self.root / name / f"{name}.log"),
        }

    def extra_server(self, name: str) -> ExtraServer:
        """The optional server `name` of this stack (it must have been asked for)."""
        info = self.info()
        if info is None or name not in info.extras:
            raise StartupError(f"the stack in {self.root} was not started --with {name}")
        return EXTRAS[name].server(self.root / name, info.extras[name])

    # -- Toxiproxy (a stack started with --proxied) -------------------------------------
    def toxiproxy(self) -> ToxiproxyServer:
        """The Toxiproxy in front of this stack's Kafka (it must have been asked for)."""
        info = self.info()
        if info is None or not info.toxiproxy_port:
            raise StartupError(f"the stack in {self.root} was not started --proxied")
        return ToxiproxyServer(self.root / "toxiproxy", info.toxiproxy_port)

    def kafka_proxies(self) -> list[Proxy]:
        """One proxy per Kafka node of a proxied stack: its advertised address in front
        of its own listener (named `kafka-<node id>`)."""
        info = self.info()
        assert info is not None
        return [
            Proxy(f"kafka-{n.node_id}", n.address, f"127.0.0.1:{n.port}")
            for n in self._nodes(info)
            if n.proxy_port
        ]

    # -- start -----------------------------------------------------------------------
    def up(
        self,
        brokers: int = 1,
        kafka_port: int | None = None,
        mongo_port: int | None = None,
        partitions: int = 6,
        store: str | None = None,
        extras: Sequence[str] = (),
        secure: bool = False,
        proxied: bool = False,
    ) -> StackInfo:
        """Bring the stack up (or finish bringing it up) and wait until it answers.

        Re-running on a stack that is already up returns at once; a stack keeps the
        store it was made with (`store`, default $TICKWIRE_STACK_STORE or PostgreSQL,
        applies to a new one; so do `secure`, Kafka's SASL_SSL listener, and `proxied`,
        Kafka reachable only through Toxiproxy). `extras`
        (names of `extras.EXTRAS`) are started too, and added to a stack that runs
        without them. Interrupted (Ctrl-C) or failed start-ups
        stop whatever this call started.
        """
        existing = self.info()
        if existing is not None and self.status()["up"]:
            return self._add_extras(existing, extras)
        chosen = existing.store if existing else store or default_store()
        if chosen not in STORES:
            raise StackError(f"unknown store {chosen!r}: use one of {', '.join(STORES)}")
        if secure and chosen != "postgresql" and existing is None:
            raise StackError("--secure needs the postgresql store (it checks the users)")
        libs = kafka.resolve_jars()
        ferret_bin = ferretdb.build()
        pg_bin = postgres.bin_dir() if chosen == "postgresql" else None
        info = existing or self._plan(
            brokers, kafka_port, mongo_port, partitions, chosen, secure, proxied
        )
        for name in extras:
            info.extras.setdefault(name, procs.free_port())
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(info), indent=2))
        try:
            for node in self._nodes(info):
                self.start_kafka_node(node.node_id, libs=libs, wait=False)
            if pg_bin is not None:
                self._start_postgres(info, pg_bin)
            self._start_ferretdb(info, ferret_bin)
            if info.toxiproxy_port:  # before Kafka's probe: it goes through the proxies
                print("[stack] waiting for Toxiproxy...", flush=True)
                self.toxiproxy().start(self.kafka_proxies())
            print(f"[stack] waiting for Kafka at {info.bootstrap_servers}...", flush=True)
            kafka.wait_ready(
                info.bootstrap_servers,
                len(info.kafka_nodes),
                self.kafka_dir(info.kafka_nodes[0]["node_id"]) / "kafka.log",
                options=self.kafka_security().options(),
                listener=f"127.0.0.1:{info.kafka_nodes[0]['port']}",
            )
            ferretdb.wait_ready(
                info.mongodb_url,
                self.root / "ferretdb" / "ferretdb.log",
                options=self.mongo_security().options(),
            )
            for name in info.extras:
                print(f"[stack] waiting for {name}...", flush=True)
                self.extra_server(name).start()
        except BaseException:
            self.down()
            raise
        return info

    def _add_extras(self, info: StackInfo, extras: Sequence[str]) -> StackInfo:
        """Start the extras a running stack lacks; a failure stops only those."""
        added = [name for name in extras if name not in info.extras]
        if not added:
            return info
        for name in added:
            info.extras[name] = procs.free_port()
        self.state_file.write_text(json.dumps(asdict(info), indent=2))
        try:
            for name in added:
                print(f"[stack] waiting for {name}...", flush=True)
                self.extra_server(name).start()
        except BaseException:
            for name in added:
                self.extra_server(name).stop()
            raise
        return info

    def _plan(
        self,
        brokers: int,
        kafka_port: int | None,
        mongo_port: int | None,
        partitions: int,
        store: str,
        secure: bool = False,
        proxied: bool = False,
    ) -> StackInfo:
        nodes = []
        for i in range(brokers):
            port = kafka_port + i if kafka_port is not None and brokers > 1 else kafka_port
            nodes.append(
                kafka.KafkaNode(
                    node_id=i + 1,
                    port=port or procs.free_port(),
                    controller_port=procs.free_port(),
                    proxy_port=procs.free_port() if proxied else 0,
                )
            )
        mport = mongo_port or procs.free_port()
        return StackInfo(
            bootstrap_servers=",".join(n.address for n in nodes),
            mongodb_url=f"mongodb://127.0.0.1:{mport}/",
            kafka_nodes=[asdict(n) for n in nodes],
            mongo_port=mport,
            cluster_id=kafka.cluster_id(),
            partitions=partitions,
            store=store,
            postgres_port=procs.free_port() if store == "postgresql" else 0,
            secure=secure,
            toxiproxy_port=procs.free_port() if proxied else 0,
        )

    def start_kafka_node(self, node_id: int, libs: Path | None = None, wait: bool = True) -> None:
        """Start (or restart) one Kafka node of this stack."""
        info = self.info()
        if info is None:
            raise StartupError(f"no stack in {self.root}")
        libs = libs or kafka.resolve_jars()
        nodes = self._nodes(info)
        node = next(n for n in nodes if n.node_id == node_id)
        d = self.kafka_dir(node_id)
        if procs.alive(procs.read_pid(d / "kafka.pid")):
            return
        (d / "data").mkdir(parents=True, exist_ok=True)
        config = d / "server.properties"
        secure = self._secure(info)
        config.write_text(kafka.server_properties(node, nodes, d / "data", info.partitions, secure))
        log4j = d / "log4j2.properties"
        log4j.write_text(kafka.LOG4J2)
        kafka.format_storage(libs, config, info.cluster_id, log4j, secure)
        argv = kafka.java_argv(libs, "kafka.Kafka", str(config), log4j=log4j)
        procs.spawn(argv, d / "kafka.log", d / "kafka.pid", cwd=d)
        if wait:
            kafka.wait_ready(
                node.address,
                1,
                d / "kafka.log",
                options=self.kafka_security().options(),
                listener=f"127.0.0.1:{node.port}",
            )

    def stop_kafka_node(self, node_id: int, kill: bool = False) -> None:
        """Stop one Kafka node: SIGTERM (controlled shutdown) or SIGKILL (a crash)."""
        import signal

        sig = signal.SIGKILL if kill else signal.SIGTERM
        procs.stop(self.kafka_dir(node_id) / "kafka.pid", sig=sig)

    def _start_postgres(self, info: StackInfo, bindir: Path) -> None:
        d = self.root / "postgres"
        if not procs.alive(procs.read_pid(d / "postgres.pid")):
            d.mkdir(parents=True, exist_ok=True)
            postgres.init_cluster(bindir, d / "data", d / "postgres.log", self._pg_password(info))
            argv = postgres.argv(bindir, d / "data", info.postgres_port)
            procs.spawn(argv, d / "postgres.log", d / "postgres.pid", cwd=d)
        print(f"[stack] waiting for PostgreSQL on 127.0.0.1:{info.postgres_port}...", flush=True)
        postgres.wait_ready(bindir, info.postgres_port, d / "postgres.log")
        postgres.install_indexing(
            bindir, info.postgres_port, d / "postgres.log", self._pg_password(info)
        )

    def _pg_password(self, info: StackInfo) -> Path | None:
        """A secure stack's PostgreSQL password file (FerretDB's clients give it)."""
        return self._password("mongodb") if info.secure else None

    def _start_ferretdb(self, info: StackInfo, binary: Path) -> None:
        d = self.root / "ferretdb"
        if procs.alive(procs.read_pid(d / "ferretdb.pid")):
            return
        (d / "data").mkdir(parents=True, exist_ok=True)
        pg_url = postgres.url(info.postgres_port) if info.store == "postgresql" else None
        tls = self.tls_files().server if info.secure else None
        argv = ferretdb.argv(binary, info.mongo_port, procs.free_port(), d / "data", pg_url, tls)
        procs.spawn(argv, d / "ferretdb.log", d / "ferretdb.pid", cwd=d)

    # -- stop ------------------------------------------------------------------------
    def down(self, wipe: bool = False) -> list[str]:
        """Stop every process of this stack; with wipe, delete its data too."""
        import signal

        stopped = []
        # PostgreSQL last (FerretDB is its client), with SIGINT: its fast shutdown
        # (SIGTERM would wait for every session to end)
        pid_files = sorted(self.root.glob("*/*.pid"), key=lambda p: (p.name == "postgres.pid", p))
        for pid_file in pid_files:
            sig = signal.SIGINT if pid_file.name == "postgres.pid" else signal.SIGTERM
            if procs.stop(pid_file, sig=sig):
                stopped.append(pid_file.parent.name)
        if wipe:
            import shutil

            shutil.rmtree(self.root, ignore_errors=True)
        return stopped

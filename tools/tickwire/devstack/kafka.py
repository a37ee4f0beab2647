"""Apache Kafka in KRaft mode from Maven Central jars: resolve, configure, format, start.

One node runs broker and controller combined; three nodes form a quorum with RF 3 and
min.insync.replicas 2 for the fault tests.

A secure stack (`tickwire-stack up --secure`, `Secure`) has one client listener,
SASL_SSL: TLS with the stack's own certificates (`certs.py`, a PEM keystore), and SASL
with SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN. SCRAM users are created with the broker's
own tool at format time (`kafka-storage format --add-scram`); PLAIN users are listed in
the listener's JAAS configuration. Brokers talk to each other over the same listener
as user `broker` (SCRAM-SHA-512). The KRaft controller listener stays PLAINTEXT on
127.0.0.1: it is reachable only from this machine (docs/operations.md says what to do
in production).

A proxied stack (`tickwire-stack up --proxied`, toxiproxy.py) gives each node a proxy
port: the client listener still binds the node's own port, but advertises the proxy's,
so clients (and the other brokers: replication crosses the proxies too) that bootstrap
through the proxy stay behind it, where the fault tests add their toxics.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tickwire.devstack import certs, procs
from tickwire.devstack.errors import StartupError
from tickwire.devstack.paths import KAFKA_POM, KAFKA_VERSION, cache_dir, cache_lock
from tickwire.devstack.tools import require, require_java

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.server.name = kafka.server.KafkaServer
logger.server.level = INFO
"""


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node's identity and ports."""

    node_id: int
    port: int
    controller_port: int
    proxy_port: int = 0  # a proxied stack's Toxiproxy listener in front of `port`

    @property
    def address(self) -> str:
        """Where clients reach this node, and what it advertises: its proxy's address
        on a proxied stack, its own listener otherwise."""
        return f"127.0.0.1:{self.proxy_port or self.port}"


@dataclass(frozen=True)
class Secure:
    """A secure stack's TLS files and SASL users (see the module docstring)."""

    tls: certs.StackCerts
    client_user: str
    client_password: str
    broker_password: str

    def listener_properties(self) -> list[str]:
        """server.properties lines for the SASL_SSL listener."""
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        broker = f'username="broker" password="{self.broker_password}"'
        return [
            "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram} {broker};",
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram};",
            f"listener.name.sasl_ssl.plain.sasl.jaas.config={plain} {broker}"
            f' user_broker="{self.broker_password}"'
            f' user_{self.client_user}="{self.client_password}";',
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.tls.server}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.tls.ca}",
            "ssl.client.auth=requested",
            "ssl.endpoint.identification.algorithm=https",
        ]

    def scram_users(self) -> list[str]:
        """`kafka-storage format` arguments creating the SCRAM users."""
        out = []
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            for name, password in (
                ("broker", self.broker_password),
                (self.client_user, self.client_password),
            ):
                out += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        return out


def libs_dir() -> Path:
    """The cached jar directory, keyed by the pom's content so a pom change re-resolves."""
    digest = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()[:12]
    return cache_dir() / f"kafka-{KAFKA_VERSION}-{digest}" / "libs"


def resolve_jars() -> Path:
    """Resolve the broker and tools jars with Maven into the cache, once."""
    libs = libs_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    with cache_lock(libs.parent.name):
        if not marker.exists():  # not resolved by whoever held the lock before
            _resolve_jars(libs, marker)
    return libs


def _resolve_jars(libs: Path, marker: Path) -> None:
    require_java()
    mvn = require("mvn")
    print(
        f"[stack] resolving Apache Kafka {KAFKA_VERSION} jars with Maven into {libs} "
        "(first run only, about a minute)...",
        flush=True,
    )
    libs.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn,
        "-B",
        "--no-transfer-progress",
        "-f",
        str(KAFKA_POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, check=False, stdout=sys.stdout, stderr=sys.stderr)
    if result.returncode != 0:
        raise StartupError(f"Maven could not resolve the Kafka jars (exit {result.returncode})")
    marker.write_text(KAFKA_VERSION)


def cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def server_properties(
    node: KafkaNode,
    nodes: list[KafkaNode],
    data_dir: Path,
    partitions: int,
    secure: Secure | None = None,
) -> str:
    """The server.properties of one node of the given cluster."""
    rf = 3 if len(nodes) >= 3 else 1
    min_isr = 2 if rf == 3 else 1
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
    client = "SASL_SSL" if secure is not None else "PLAINTEXT"
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            f"listeners={client}://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners={client}://{node.address}",
            "controller.listener.names=CONTROLLER",
            f"inter.broker.listener.name={client}",
            f"listener.security.protocol.map={client}:{client},CONTROLLER:PLAINTEXT",
            *(secure.listener_properties() if secure is not None else []),
            f"log.dirs={data_dir}",
            f"num.partitions={partitions}",
            f"default.replication.factor={rf}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={rf}",
            "offsets.topic.num.partitions=6",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.segment.bytes=67108864",
            "log.retention.check.interval.ms=5000",
            "",
        ]
    )


def java_argv(
    libs: Path, main_class: str, *args: str, heap: str = "512m", log4j: Path | None = None
) -> list[str]:
    """A java command line running main_class from the cached jars."""
    argv = [
        require_java(),
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        "-cp",
        f"{libs}/*",
    ]
    if log4j is not None:
        argv.append(f"-Dlog4j2.configurationFile={log4j}")
    return [*argv, main_class, *args]


def format_storage(
    libs: Path, config: Path, cid: str, log4j: Path, secure: Secure | None = None
) -> None:
    """Format a node's KRaft storage directory (idempotent: skipped once formatted),
    creating a secure stack's SCRAM users."""
    argv = java_argv(
        libs,
        "kafka.tools.StorageTool",
        "format",
        # `=` form: a base64url id may start with "-", which argparse reads as an option
        f"--cluster-id={cid}",
        "-c",
        str(config),
        "--ignore-formatted",
        *(secure.scram_users() if secure is not None else []),
        heap="256m",
        log4j=log4j,
    )
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StartupError(f"formatting Kafka storage failed: {result.stdout}{result.stderr}")


async def _brokers_registered(bootstrap: str, expected: int, options: dict[str, Any]) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **options)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster.get("brokers", [])) >= expected
    except Exception:
        return False
    finally:
        await admin.close()


def wait_ready(
    bootstrap: str,
    expected_brokers: int,
    log: Path,
    timeout: float = 90.0,
    options: dict[str, Any] | None = None,
    listener: str | None = None,
) -> None:
    """Block until a metadata request lists every broker, or raise StartupError.
    `options`: the client's security (`KafkaSecurity.options()`) on a secure stack;
    `listener`: the first broker's own address when bootstrap is a proxy in front of it
    (which accepts connections before the broker does)."""
    deadline = time.monotonic() + timeout
    first = listener or bootstrap.split(",")[0]
    host, port = first.rsplit(":", 1)
    while time.monotonic() < deadline:
        if procs.port_open(host, int(port)) and asyncio.run(
            _brokers_registered(bootstrap, expected_brokers, options or {})
        ):
            return
        time.sleep(0.5)
    raise StartupError(
        f"Kafka at {bootstrap} did not answer a metadata request within {timeout:.0f}s; see {log}"
    )

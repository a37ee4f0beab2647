"""W3C trace context through the pipeline, and OpenTelemetry spans when asked for.

A producer that sends a `traceparent` header (W3C Trace Context) to ingest has it
carried on every hop: ingest writes it as the `traceparent` Kafka header of the
`ticks.raw` record (the last header, after the CloudEvents ones), the processor puts it
on the `ticker.updates` / `ticker.bars` records that event produced (the newest traced
event of a symbol in a batch, when several are coalesced into one update), and the
gateway reads it when it fans the update out. Each hop that takes part records a span
(`ingest.accept`, `processor.process`, `gateway.fanout`) as a child of the one before
and forwards its own span id, so a trace shows the event's path across services.

Export is opt-in: with `TICKWIRE_OTEL_TRACES_ENDPOINT` set (an OTLP/HTTP traces URL,
e.g. `http://collector:4318/v1/traces`) the OpenTelemetry SDK batches spans and sends
them there; without it no span is recorded and the header is forwarded unchanged.
Sampling follows the producer's decision (the sampled flag of its traceparent: the
SDK's parent-based sampler). Only records that carry a traceparent cost anything beyond
one comparison: the header is looked for in the last position, where tickwire writes it.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tickwire.events.headers import TRACEPARENT
from tickwire.kafka.batches import OutgoingRecord

_PROPAGATOR = TraceContextTextMapPropagator()
_state: dict[str, Any] = {"tracer": trace.NoOpTracer(), "provider": None}


def configure(service: str, endpoint: str | None) -> None:
    """Export spans of `service` to an OTLP/HTTP endpoint, or record none (None)."""
    shutdown()
    if endpoint is None:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"tickwire-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _state["provider"] = provider
    _state["tracer"] = provider.get_tracer("tickwire")


def shutdown() -> None:
    """Flush and stop the exporter, if one runs (spans recorded so far are sent)."""
    provider = _state["provider"]
    if provider is not None:
        provider.shutdown()
    _state["provider"] = None
    _state["tracer"] = trace.NoOpTracer()


def trace_id(traceparent: str | bytes | None) -> str | None:
    """The 32-hex trace id of a well-formed traceparent, else None."""
    if traceparent is None:
        return None
    text = traceparent.decode("ascii", "replace") if isinstance(traceparent, bytes) else traceparent
    parts = text.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return None
    return parts[1]


def hop(traceparent: str | bytes, name: str, attributes: Mapping[str, str] | None = None) -> bytes:
    """Record this service's span as a child of `traceparent`; the traceparent to
    forward (this span's, or the one received when no span is recorded)."""
    text = traceparent.decode("ascii", "replace") if isinstance(traceparent, bytes) else traceparent
    context = _PROPAGATOR.extract({"traceparent": text})
    span = _state["tracer"].start_span(
        name, context=context, kind=trace.SpanKind.CONSUMER, attributes=dict(attributes or {})
    )
    span.end()
    # without a provider the span is the parent's own context: the header goes on as is
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent", text).encode()


def traced(headers: Sequence[tuple[str, bytes]] | None) -> bytes | None:
    """The record's traceparent when tickwire wrote one (the last header), else None."""
    if headers and headers[-1][0] == TRACEPARENT:
        return headers[-1][1]
    return None


def carry(
    inputs: Iterable[Sequence[Any]], outgoing: list[OutgoingRecord], topics: Container[str]
) -> int:
    """The processor's hook: a span per traced input record, and the traceparent of the
    newest traced event of each symbol appended to that symbol's outgoing records on
    `topics`. Returns how many inputs were traced."""
    latest: dict[bytes | None, bytes] = {}
    count = 0
    for records in inputs:
        for record in records:
            parent = traced(record.headers)
            if parent is not None:
                count += 1
                symbol = record.key.decode("utf-8", "replace") if record.key else ""
                latest[record.key] = hop(parent, "processor.process", {"symbol": symbol})
    if latest:
        for out in outgoing:
            forward = latest.get(out.key)
            if forward is not None and out.topic in topics:
                out.headers.append((TRACEPARENT, forward))
    return count

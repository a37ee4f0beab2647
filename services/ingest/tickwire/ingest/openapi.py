"""The OpenAPI document's request bodies, responses and security scheme.

The handlers read raw bodies (see routes.py), so the request bodies are described
here from the pydantic models of models.py, whose schemas `install()` adds to the
document's components.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from tickwire.events.kinds import KINDS
from tickwire.ingest.models import CLOUD_MODELS, PLAIN_MODELS, Accepted, BatchResult, ErrorBody

_REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "ApiKey"

SINGLE_DESCRIPTION = """
One trade or quote, as plain JSON (`{"type": "trade", ...}`) or as a structured-mode
CloudEvent (`application/cloudevents+json`). **202 means Kafka has it** (acks=all): the
answer carries the event's id (the producer's `id`, else a new ULID), partition and
offset. 503 (with Retry-After) means it was not accepted: retry with the same `id`.
"""

BATCH_DESCRIPTION = """
Many events: a JSON array, a CloudEvents batch (`application/cloudevents-batch+json`),
or NDJSON (`application/x-ndjson`, one plain event per line), in order.

All or nothing for the request's own problems: if any entry is malformed (400), out of
the key's scope (403) or invalid (422), **nothing is published** and the answer is that
status (422 when they differ) with every refused entry in `errors` (field
`[index].field`). Otherwise the events are published: **202** when Kafka acknowledged
every one, **207** when only some partitions acknowledged in time: `results` has one
entry per event, in request order, with `status` 202 (and `id`, `partition_id`,
`offset`) or 503 (not acknowledged: retry those with the same `id`). When none was
acknowledged the answer is 503.
The rate limit is charged for the valid, in-scope events; when the key's bucket cannot
cover them all, the whole batch is refused with 429.
"""


def _one_of(tags: list[str], models: tuple[type[BaseModel], ...], ref: str) -> dict[str, Any]:
    refs = [ref.format(model=m.__name__) for m in models]
    return {
        "oneOf": [{"$ref": r} for r in refs],
        "discriminator": {"propertyName": "type", "mapping": dict(zip(tags, refs, strict=True))},
    }


def _plain(ref: str = _REF) -> dict[str, Any]:
    return _one_of([k.name for k in KINDS], PLAIN_MODELS, ref)


def _cloud(ref: str = _REF) -> dict[str, Any]:
    return _one_of([k.type for k in KINDS], CLOUD_MODELS, ref)


def _array(items: dict[str, Any], max_items: int) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": 1, "maxItems": max_items}


def single_request_body() -> dict[str, Any]:
    """openapi_extra for POST /v1/events."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _plain()},
                "application/cloudevents+json": {"schema": _cloud()},
            },
        },
        "security": [{SECURITY_SCHEME: []}],
    }


def batch_request_body(max_items: int = 10_000) -> dict[str, Any]:
    """openapi_extra for POST /v1/events:batch."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _array(_plain(), max_items)},
                "application/cloudevents-batch+json": {"schema": _array(_cloud(), max_items)},
                "application/x-ndjson": {
                    "schema": _array(_plain(), max_items),
                    "description": "one plain event per line",
                },
            },
        },
        "security": [{SECURITY_SCHEME: []}],
    }


_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def responses(single: bool) -> dict[int | str, dict[str, Any]]:
    """The documented responses of an events endpoint."""
    out: dict[int | str, dict[str, Any]] = {}
    if single:
        out[202] = {"model": Accepted, "description": "Kafka acknowledged the event"}
    else:
        out[202] = {"model": BatchResult, "description": "Kafka acknowledged every event"}
        out[207] = {
            "model": BatchResult,
            "description": "some acknowledged by Kafka, others not (503 entries): see results",
        }
    out.update(
        {
            400: {"model": ErrorBody, "description": "malformed body"},
            401: {"model": ErrorBody, "description": "missing or unknown API key"},
            403: {"model": ErrorBody, "description": "the key's scopes do not cover it"},
            413: {"model": ErrorBody, "description": "body larger than the limit"},
            415: {"model": ErrorBody, "description": "unsupported Content-Type"},
            422: {
                "model": ErrorBody,
                "description": "invalid event (which field, why), or too many in a batch",
            },
            429: {"model": ErrorBody, "description": "rate limited", "headers": _RETRY_AFTER},
            503: {
                "model": ErrorBody,
                "description": "Kafka did not acknowledge in time, or overloaded",
                "headers": _RETRY_AFTER,
            },
        }
    )
    return out


def install(app: FastAPI) -> None:
    """Add the event models and the API-key scheme to the app's OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        _, defs = models_json_schema(
            [(m, "validation") for m in (*PLAIN_MODELS, *CLOUD_MODELS)],
            ref_template=_REF,
        )
        components = document.setdefault("components", {})
        components.setdefault("schemas", {}).update(defs.get("$defs", {}))
        components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "a producer's API key (or send it as Authorization: Bearer)",
        }
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]

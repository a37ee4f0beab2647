"""docs/asyncapi.yaml for tests: the document, and validators of its messages' payloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
URI = "urn:tickwire:asyncapi"


def load() -> dict[str, Any]:
    """The document, parsed."""
    doc = yaml.safe_load(DOC_PATH.read_text())
    assert isinstance(doc, dict)
    return doc


def validator(doc: dict[str, Any], message: str) -> Draft7Validator:
    """A validator of one message's payload, its $refs resolved within the document."""
    registry: Registry[Any] = Registry().with_resource(URI, DRAFT7.create_resource(doc))
    return Draft7Validator(
        {"$ref": f"{URI}#/components/messages/{message}/payload"}, registry=registry
    )

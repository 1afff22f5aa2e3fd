"""Every n8n executions operation is served, with a schema compatible with n8n's document.

Our document may add operations, parameters, responses and properties; it may not remove or
retype n8n's, except ``workflowId`` (a string, as real n8n workflow ids are) and numbers that
are always whole (execution ids: ``integer`` where n8n says ``number``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.routes.docs import openapi_document

N8N = Path(__file__).resolve().parents[3] / "shared" / "n8n" / "executions-openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")
RETYPED = {"workflowId": ("number", "string")}


@pytest.fixture(scope="module")
def n8n() -> dict[str, Any]:
    if not N8N.exists():
        pytest.skip(f"n8n's document is not beside the repository ({N8N.name} in ../shared/n8n)")
    document: dict[str, Any] = json.loads(N8N.read_text())
    return document


def resolve(document: dict[str, Any], node: Any) -> Any:
    """Follow ``$ref`` (within one document) until a real node."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def compatible_type(theirs: str | None, ours: str | None, name: str) -> bool:
    if theirs is None or theirs == ours:
        return True
    if (theirs, ours) == ("number", "integer"):
        return True
    return RETYPED.get(name) == (theirs, ours)


def assert_schema_covers(
    n8n: dict[str, Any], theirs: Any, ours: Any, where: str, name: str = ""
) -> None:
    """``ours`` keeps every property and type of ``theirs``."""
    mine = openapi_document()
    theirs, ours = resolve(n8n, theirs), resolve(mine, ours)
    assert compatible_type(theirs.get("type"), ours.get("type"), name), (
        f"{where}: {name or 'schema'} is {ours.get('type')} here, {theirs.get('type')} in n8n"
    )
    for prop, sub in theirs.get("properties", {}).items():
        assert prop in ours.get("properties", {}), f"{where}: property {prop!r} is missing"
        assert_schema_covers(n8n, sub, ours["properties"][prop], f"{where}.{prop}", prop)
    if "items" in theirs:
        assert "items" in ours, f"{where}: array items missing"
        assert_schema_covers(n8n, theirs["items"], ours["items"], f"{where}[]", name)
    if "enum" in theirs and "enum" in ours:
        missing = set(theirs["enum"]) - set(ours["enum"])
        assert not missing, f"{where}: enum values {missing} missing"


def n8n_operations(n8n: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in n8n["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_every_n8n_operation_is_served_compatibly(n8n: dict[str, Any]) -> None:
    mine = openapi_document()
    operations = n8n_operations(n8n)
    assert len(operations) == 8
    for path, method, theirs in operations:
        ours_path = "/api/v1" + path
        where = f"{method.upper()} {ours_path}"
        assert method in mine["paths"].get(ours_path, {}), f"{where} is not served"
        ours = mine["paths"][ours_path][method]
        our_params = {
            (p["in"], p["name"]): p for p in (resolve(mine, x) for x in ours.get("parameters", []))
        }
        for parameter in (resolve(n8n, x) for x in theirs.get("parameters", [])):
            key = (parameter["in"], parameter["name"])
            assert key in our_params, f"{where}: parameter {key} is missing"
            assert_schema_covers(
                n8n, parameter["schema"], our_params[key]["schema"], f"{where} {key}", key[1]
            )
        if "requestBody" in theirs:
            body = theirs["requestBody"]["content"]["application/json"]["schema"]
            ours_body = ours["requestBody"]["content"]["application/json"]["schema"]
            assert_schema_covers(n8n, body, ours_body, f"{where} body")
        for code, response in theirs["responses"].items():
            assert code in ours["responses"], f"{where}: response {code} is not documented"
            content = resolve(n8n, response).get("content", {}).get("application/json")
            if content:
                our_content = resolve(mine, ours["responses"][code])["content"]["application/json"]
                assert_schema_covers(
                    n8n, content["schema"], our_content["schema"], f"{where} {code}"
                )


def test_the_check_notices_a_removed_property(n8n: dict[str, Any]) -> None:
    theirs = {"type": "object", "properties": {"retryOf": {"type": "number"}}}
    with pytest.raises(AssertionError, match="retryOf"):
        assert_schema_covers(n8n, theirs, {"type": "object", "properties": {}}, "probe")
    with pytest.raises(AssertionError, match="string here, number in n8n"):
        assert_schema_covers(n8n, {"type": "number"}, {"type": "string"}, "probe", "retryOf")

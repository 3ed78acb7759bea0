"""The reference page of ``GET /api/docs``: the OpenAPI document (``openapi.py``) turned into plain
values for ``templates/api-docs.html``. No script, no CDN: the page is HTML and a style
sheet from this server."""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import Markup, escape

METHODS = ("get", "post", "put", "delete", "patch")


def prose(text: str) -> Markup:
    """Text of the document as HTML: paragraphs at blank lines, `code` in backticks."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text or "") if p.strip()]
    html = []
    for paragraph in paragraphs:
        escaped = str(escape(" ".join(paragraph.split())))
        html.append("<p>" + re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped) + "</p>")
    return Markup("".join(html))


def anchor(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-").lower()


def schema_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any]) -> Markup:
    """A schema in a few words: its type, and a link where it names another schema."""
    if "$ref" in schema:
        name = schema_name(schema["$ref"])
        return Markup('<a href="#{}">{}</a>').format(anchor("schema", name), name)
    for either in ("anyOf", "oneOf"):
        if either in schema:
            return Markup(" or ").join(type_of(s) for s in schema[either])
    if "enum" in schema:
        values = ", ".join(json.dumps(v) for v in schema["enum"])
        return Markup("one of <code>{}</code>").format(values)
    kind = schema.get("type")
    if kind == "array":
        return Markup("array of ") + type_of(schema.get("items", {}))
    if kind == "null":
        return Markup("<code>null</code>")
    return Markup("{}").format(kind or "any")


CONSTRAINTS = [
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("pattern", "matches {}"),
    ("default", "default {}"),
    ("minProperties", "at least {} field(s)"),
]


def constraints(schema: dict[str, Any]) -> str:
    found = []
    for key, words in CONSTRAINTS:
        if key in schema:
            value = schema[key]
            found.append(words.format(json.dumps(value) if key == "default" else value))
    for branch in schema.get("anyOf", []):
        found.extend(c for c in [constraints(branch)] if c)
    return ", ".join(found)


def fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "type": type_of(prop),
            "required": name in required,
            "constraints": constraints(prop),
            "description": prose(prop.get("description", "")),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _responses(operation: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for status, answer in operation.get("responses", {}).items():
        media = [
            {"type": media_type, "schema": type_of(content.get("schema", {}))}
            for media_type, content in answer.get("content", {}).items()
        ]
        links = [
            {"name": name, "operation": link["operationId"]}
            for name, link in answer.get("links", {}).items()
        ]
        out.append(
            {
                "status": status,
                "description": prose(answer.get("description", "")),
                "media": media,
                "links": links,
            }
        )
    return out


def _example(media_type: str, content: dict[str, Any]) -> str | None:
    """A body's example as it is sent: JSON, or the text of another media type."""
    if "example" not in content:
        return None
    example = content["example"]
    return json.dumps(example) if media_type == "application/json" else str(example)


def _operation(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    body = operation.get("requestBody")
    request = None
    if body:
        request = [
            {
                "type": media_type,
                "schema": type_of(content["schema"]),
                "example": _example(media_type, content),
            }
            for media_type, content in body["content"].items()
        ]
    return {
        "id": operation["operationId"],
        "method": method.upper(),
        "path": path,
        "summary": operation.get("summary", ""),
        "description": prose(operation.get("description", "")),
        "token": bool(operation.get("security")),
        "parameters": [
            {
                "name": p["name"],
                "in": p["in"],
                "required": p.get("required", False),
                "type": type_of(p["schema"]),
                "constraints": constraints(p["schema"]),
                "description": prose(p.get("description", "")),
            }
            for p in operation.get("parameters", [])
        ],
        "request": request,
        "responses": _responses(operation),
    }


def page(document: dict[str, Any]) -> dict[str, Any]:
    """What the template shows: operations grouped by tag, then every schema."""
    groups = []
    for tag in document.get("tags", []):
        operations = [
            _operation(path, method, item[method])
            for path, item in document["paths"].items()
            for method in METHODS
            if method in item and tag["name"] in item[method].get("tags", [])
        ]
        groups.append({"name": tag["name"], "description": tag["description"], "ops": operations})
    models = [
        {
            "name": name,
            "anchor": anchor("schema", name),
            "description": prose(schema.get("description", "")),
            "fields": fields(schema),
        }
        for name, schema in document["components"]["schemas"].items()
    ]
    info = document["info"]
    return {
        "title": info["title"],
        "version": info["version"],
        "description": prose(info.get("description", "")),
        "groups": groups,
        "models": models,
    }

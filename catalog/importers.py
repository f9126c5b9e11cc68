"""Parsers for the catalog formats toolrec imports. Pure: text in, tool specs out.

* ``openai``: ``[{"type": "function", "function": {"name", "description", "parameters"}}]``
  (a bare list of function objects, or ``{"tools": [...]}`` holding them, is accepted too).
* ``mcp``: the result of MCP ``tools/list``: ``{"tools": [{"name", "description", "inputSchema"}]}``.
* ``jsonl``: one tool a line, as in ``shared/datasets``: ``id``, ``name``, ``description``,
  ``parameters``, ``category``, ``source`` and optional ``toolkit``, ``tags``, ``method``,
  ``description_for_model``. The ``id`` is the tool's unique name.

Every record becomes either a :class:`ToolSpec` or a :class:`Rejection` naming its line
(JSONL) or position (JSON) and the reason, so one bad record never sinks the good ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft4Validator, Draft6Validator, Draft7Validator, Draft201909Validator, Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

FORMATS = ("auto", "openai", "mcp", "jsonl")
MAX_NAME = 200
MAX_DESCRIPTION = 20_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KNOWN_JSONL_KEYS = {"id", "name", "description", "parameters", "category", "source", "toolkit", "tags"}


class InvalidTool(ValueError):
    """A record that cannot become a tool; the message says why."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    category: str = ""
    tags: tuple[str, ...] = ()
    family: str = ""
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def content_hash(self) -> str:
        payload = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "category": self.category,
            "tags": list(self.tags),
            "family": self.family,
            "source": self.source,
            "extra": self.extra,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Rejection:
    position: str  # "line 12" or "record 3"
    reason: str


# Drafts a schema without "$schema" is tried against, newest first: real servers publish
# draft-04 schemas (boolean "exclusiveMinimum") without saying so.
_DRAFTS = (Draft202012Validator, Draft201909Validator, Draft7Validator, Draft6Validator, Draft4Validator)


def _schema_error(parameters: dict[str, Any]) -> str | None:
    """None when the schema is valid under the draft it declares ("$schema"), or under some
    draft when it declares none or one jsonschema does not know; else the declared (or
    newest) draft's complaint."""
    declared = validator_for(parameters, default=None) if isinstance(parameters.get("$schema"), str) else None
    first_error: str | None = None
    for draft in (declared,) if declared is not None else _DRAFTS:
        try:
            draft.check_schema(parameters)
            return None
        except SchemaError as exc:
            first_error = first_error or exc.message
    return first_error


def validate_parameters(parameters: Any, *, lenient: bool = False) -> dict[str, Any]:
    """A tool's parameters must be a JSON schema object describing an object.

    `lenient` (tools read from MCP servers) keeps a schema that no draft accepts: the server
    serves the tool whatever we think of its schema, so dropping it would only hide a real
    tool; a person writing a tool (REST, admin) is told instead."""
    if parameters is None:
        return {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise InvalidTool("parameters must be a JSON schema object")
    if parameters.get("type", "object") != "object":
        raise InvalidTool('parameters must describe an object ("type": "object")')
    error = _schema_error(parameters)
    if error is not None and not lenient:
        raise InvalidTool(f"parameters is not a valid JSON schema: {error}")
    return {"type": "object", **parameters} if "type" not in parameters else dict(parameters)


def _text(value: Any, what: str, *, limit: int, required: bool = False, strip: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidTool(f"{what} must be a string")
    if strip:
        value = value.strip()
    if required and not value.strip():
        raise InvalidTool(f"{what} is required")
    if len(value) > limit:
        raise InvalidTool(f"{what} is longer than {limit} characters")
    return value


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise InvalidTool("tags must be a list of strings")
    return tuple(dict.fromkeys(t.strip().lower() for t in value if t.strip()))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def make_spec(
    *,
    name: Any,
    description: Any = "",
    parameters: Any = None,
    category: Any = "",
    tags: Any = None,
    family: Any = "",
    source: Any = "",
    extra: Mapping[str, Any] | None = None,
    lenient_schema: bool = False,
) -> ToolSpec:
    """Validate one tool's fields; raise :class:`InvalidTool` with the reason."""
    fields = {"name": name, "description": description, "parameters": parameters, "category": category}
    fields |= {"tags": tags, "family": family, "source": source, "extra": extra}
    for what, value in fields.items():
        # PostgreSQL stores no NUL character in text or jsonb: refused here with a reason,
        # not as a database error halfway through an import.
        if _has_nul(value):
            raise InvalidTool(f"{what} must not contain NUL characters")
    # A name is an identifier: kept exactly as given (some catalogs have leading spaces in ids).
    clean_name = _text(name, "name", limit=MAX_NAME, required=True, strip=False)
    if _CONTROL.search(clean_name):
        raise InvalidTool("name must not contain control characters")
    return ToolSpec(
        name=clean_name,
        description=_text(description, "description", limit=MAX_DESCRIPTION),
        parameters=validate_parameters(parameters, lenient=lenient_schema),
        category=_text(category, "category", limit=100),
        tags=_tags(tags),
        family=_text(family, "family", limit=200),
        source=_text(source, "source", limit=200),
        extra=dict(extra or {}),
    )


def detect_format(text: str) -> str:
    stripped = text.lstrip()
    if not stripped:
        return "jsonl"
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError:
        return "jsonl"
    if isinstance(document, dict) and isinstance(document.get("tools"), list):
        tools = document["tools"]
        if tools and isinstance(tools[0], dict) and ("inputSchema" in tools[0] or "type" not in tools[0]):
            return "mcp"
        return "openai"
    if isinstance(document, list):
        return "openai"
    return "jsonl"  # a single JSON object on one line is a one-line JSONL file


def parse_tools(text: str, fmt: str = "auto", *, source: str = "") -> Iterator[ToolSpec | Rejection]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(text)
    if fmt == "jsonl":
        yield from _parse_jsonl(text, source)
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        yield Rejection(f"line {exc.lineno}", f"not valid JSON: {exc.msg}")
        return
    if fmt == "mcp":
        yield from parse_mcp_result(document, source)
    else:
        yield from _parse_openai(document, source)


def _parse_jsonl(text: str, source: str) -> Iterator[ToolSpec | Rejection]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        position = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Rejection(position, f"not valid JSON: {exc.msg}")
            continue
        if not isinstance(record, dict):
            yield Rejection(position, "expected a JSON object")
            continue
        try:
            name = record.get("id") or record.get("name")
            extra = {k: v for k, v in record.items() if k not in _KNOWN_JSONL_KEYS and v is not None}
            if record.get("id") and record.get("name") and record["name"] != record["id"]:
                extra["display_name"] = record["name"]
            yield make_spec(
                name=name,
                description=record.get("description"),
                parameters=record.get("parameters"),
                category=record.get("category"),
                tags=record.get("tags"),
                family=record.get("toolkit") or record.get("family"),
                source=record.get("source") or source,
                extra=extra,
            )
        except InvalidTool as exc:
            yield Rejection(position, str(exc))


def _records(document: Any, what: str) -> list[Any] | None:
    if isinstance(document, dict) and isinstance(document.get("tools"), list):
        return list(document["tools"])
    if isinstance(document, dict) and isinstance(document.get("result"), dict):
        return _records(document["result"], what)  # a whole JSON-RPC response
    if isinstance(document, list) and what == "openai":
        return document
    return None


def _parse_openai(document: Any, source: str) -> Iterator[ToolSpec | Rejection]:
    records = _records(document, "openai")
    if records is None:
        yield Rejection("record 0", 'expected a list of {"type": "function", "function": {...}} objects')
        return
    for number, record in enumerate(records, start=1):
        position = f"record {number}"
        if not isinstance(record, dict):
            yield Rejection(position, "expected a JSON object")
            continue
        function = record.get("function", record) if record.get("type", "function") == "function" else None
        if not isinstance(function, dict):
            yield Rejection(position, 'expected "type": "function" with a "function" object')
            continue
        try:
            yield make_spec(
                name=function.get("name"),
                description=function.get("description"),
                parameters=function.get("parameters"),
                category=record.get("category"),
                tags=record.get("tags"),
                family=record.get("family"),
                source=source or "openai",
            )
        except InvalidTool as exc:
            yield Rejection(position, str(exc))


def parse_mcp_result(document: Any, source: str) -> Iterator[ToolSpec | Rejection]:
    records = _records(document, "mcp")
    if records is None:
        yield Rejection("record 0", 'expected an MCP tools/list result: {"tools": [...]}')
        return
    server = document.get("server", "") if isinstance(document, dict) else ""
    for number, record in enumerate(records, start=1):
        position = f"record {number}"
        if not isinstance(record, dict):
            yield Rejection(position, "expected a JSON object")
            continue
        annotations = record.get("annotations") if isinstance(record.get("annotations"), dict) else {}
        try:
            yield make_spec(
                name=record.get("name"),
                description=record.get("description"),
                parameters=record.get("inputSchema"),
                family=server if isinstance(server, str) else "",
                source=source or "mcp",
                extra={"title": record["title"]} if isinstance(record.get("title"), str) else annotations,
                lenient_schema=True,
            )
        except InvalidTool as exc:
            yield Rejection(position, str(exc))

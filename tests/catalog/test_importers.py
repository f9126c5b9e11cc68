from __future__ import annotations

import json

import pytest

from catalog.importers import Rejection, ToolSpec, detect_format, parse_tools


def _split(records: list[ToolSpec | Rejection]) -> tuple[list[ToolSpec], list[Rejection]]:
    return [r for r in records if isinstance(r, ToolSpec)], [r for r in records if isinstance(r, Rejection)]


def test_it_reads_openai_tools_json() -> None:
    text = json.dumps(
        [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather now",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            },
            {"type": "function", "function": {"name": "send_mail", "description": "Send mail"}},
        ]
    )
    specs, rejected = _split(list(parse_tools(text)))
    assert not rejected
    assert [s.name for s in specs] == ["get_weather", "send_mail"]
    assert specs[0].parameters["properties"]["city"] == {"type": "string"}
    assert specs[1].parameters == {"type": "object", "properties": {}}


def test_it_reads_an_mcp_tools_list_result() -> None:
    text = json.dumps(
        {
            "tools": [
                {
                    "name": "read_file",
                    "description": "Read a file",
                    "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
                }
            ]
        }
    )
    assert detect_format(text) == "mcp"
    specs, rejected = _split(list(parse_tools(text)))
    assert not rejected
    assert specs[0].name == "read_file"
    assert specs[0].parameters["required"] == ["path"]


def test_it_reads_a_whole_json_rpc_response_from_mcp() -> None:
    text = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "t", "inputSchema": {"type": "object"}}]}}
    )
    specs, _ = _split(list(parse_tools(text, "mcp")))
    assert [s.name for s in specs] == ["t"]


def test_jsonl_uses_the_id_as_name_and_keeps_the_toolkit_as_family() -> None:
    line = {
        "id": "Weather API::forecast",
        "name": "forecast",
        "description": "Forecast",
        "parameters": None,
        "category": "Weather",
        "source": "x",
        "toolkit": "Weather API",
        "method": "GET",
    }
    specs, _ = _split(list(parse_tools(json.dumps(line), "jsonl")))
    assert specs[0].name == "Weather API::forecast"
    assert specs[0].family == "Weather API"
    assert specs[0].extra == {"method": "GET", "display_name": "forecast"}


def test_it_rejects_bad_records_with_their_line_and_keeps_the_good_ones() -> None:
    lines = [
        json.dumps({"id": "good_one", "description": "fine"}),
        "{not json",
        json.dumps({"id": "bad_schema", "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}}),
        json.dumps({"description": "no name"}),
        json.dumps({"id": "not_object_params", "parameters": {"type": "array"}}),
        json.dumps(["a", "list"]),
        json.dumps({"id": "bad_tags", "tags": "x"}),
        json.dumps({"id": "good_two"}),
    ]
    specs, rejected = _split(list(parse_tools("\n".join(lines), "jsonl")))
    assert [s.name for s in specs] == ["good_one", "good_two"]
    assert [r.position for r in rejected] == ["line 2", "line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "not valid JSON" in rejected[0].reason
    assert "not a valid JSON schema" in rejected[1].reason
    assert "name is required" in rejected[2].reason
    assert "object" in rejected[3].reason
    assert "tags" in rejected[5].reason


def test_a_nul_character_anywhere_rejects_the_record_with_its_reason() -> None:
    lines = [
        json.dumps({"id": "nul_description", "description": "reads\u0000 files"}),
        json.dumps(
            {"id": "nul_param", "parameters": {"type": "object", "properties": {"q": {"description": "a\u0000"}}}}
        ),
        json.dumps({"id": "literal_escape_is_fine", "description": "write \\u0000 to end a C string"}),
    ]
    specs, rejected = _split(list(parse_tools("\n".join(lines), "jsonl")))
    assert [s.name for s in specs] == ["literal_escape_is_fine"]
    assert ["description" in rejected[0].reason, "parameters" in rejected[1].reason] == [True, True]
    assert all("NUL" in r.reason for r in rejected)


def test_it_rejects_an_openai_record_that_is_not_a_function() -> None:
    text = json.dumps([{"type": "retrieval"}, {"type": "function", "function": {"name": ""}}])
    specs, rejected = _split(list(parse_tools(text, "openai")))
    assert specs == []
    assert [r.position for r in rejected] == ["record 1", "record 2"]


def test_a_broken_json_document_is_one_rejection_not_a_crash() -> None:
    _, rejected = _split(list(parse_tools('[{"type": "function",', "openai")))
    assert len(rejected) == 1 and "not valid JSON" in rejected[0].reason


def test_content_hash_changes_with_the_description_only_when_it_changes() -> None:
    a = next(parse_tools(json.dumps({"id": "t", "description": "one"}), "jsonl"))
    b = next(parse_tools(json.dumps({"id": "t", "description": "one"}), "jsonl"))
    c = next(parse_tools(json.dumps({"id": "t", "description": "two"}), "jsonl"))
    assert isinstance(a, ToolSpec) and isinstance(b, ToolSpec) and isinstance(c, ToolSpec)
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        list(parse_tools("[]", "yaml"))


def test_names_are_kept_exactly_so_dataset_ids_still_match() -> None:
    spec = next(parse_tools(json.dumps({"id": " Quotes API::get_random_quote"}), "jsonl"))
    assert isinstance(spec, ToolSpec) and spec.name == " Quotes API::get_random_quote"
    rejected = next(parse_tools(json.dumps({"id": "   "}), "jsonl"))
    assert isinstance(rejected, Rejection) and "name is required" in rejected.reason


DRAFT4_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "properties": {"limit": {"type": "integer", "minimum": 0, "exclusiveMinimum": True}},
}


def test_a_schema_is_checked_against_the_draft_it_declares() -> None:
    undeclared = {k: v for k, v in DRAFT4_SCHEMA.items() if k != "$schema"}
    for schema in (DRAFT4_SCHEMA, undeclared):  # draft-04 syntax, declared or not
        specs, rejected = _split(
            list(parse_tools(json.dumps({"tools": [{"name": "t", "inputSchema": schema}]}), "mcp"))
        )
        assert rejected == [] and specs[0].parameters == schema
    # the same boolean under a draft that declares otherwise is an error, for a person writing it
    declared_2020 = {**undeclared, "$schema": "https://json-schema.org/draft/2020-12/schema"}
    specs, rejected = _split(
        list(
            parse_tools(
                json.dumps([{"type": "function", "function": {"name": "t", "parameters": declared_2020}}]), "openai"
            )
        )
    )
    assert specs == [] and "not a valid JSON schema" in rejected[0].reason


def test_an_mcp_tool_is_never_dropped_only_for_its_schema() -> None:
    broken = {"type": "object", "properties": {"a": {"type": "nope"}}}
    specs, rejected = _split(list(parse_tools(json.dumps({"tools": [{"name": "t", "inputSchema": broken}]}), "mcp")))
    assert rejected == [] and specs[0].parameters == broken

"""The API's JSON parser: the standard one, plus the limits PostgreSQL and Python need.

Refused here, once, with a reason, instead of wherever the value would later break:
nesting deeper than ``API_MAX_JSON_DEPTH`` (the decoder, the conversation reader and
jsonschema all recurse, and each would raise RecursionError), lone UTF-16 surrogates
(``"\\ud800"``: not Unicode, so neither UTF-8 nor PostgreSQL can store them) and NUL in
object keys (PostgreSQL's jsonb refuses it). NUL in string values is left to the fields:
DRF's CharField refuses it, and message content drops it on purpose (tool results pasted
from binary output carry it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_SURROGATE = re.compile("[\ud800-\udfff]")


def _path(parent: str, key: object) -> str:
    return f"{parent}[{key}]" if isinstance(key, int) else f"{parent}.{key}" if parent else str(key)


def json_problem(data: Any, max_depth: int) -> str | None:
    """Why this parsed JSON value is refused, or None. Iterative: the value may be deep."""
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return f"{where or 'the body'}: a lone UTF-16 surrogate is not valid Unicode text"
        elif isinstance(value, Mapping | list):
            if depth > max_depth:
                return f"{where or 'the body'}: JSON nested deeper than {max_depth} levels"
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and ("\x00" in key or _SURROGATE.search(key)):
                    return f"{where or 'the body'}: an object key holds a NUL character or a lone surrogate"
                stack.append((item, depth + 1, _path(where, key)))
    return None


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.API_MAX_JSON_DEPTH
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:  # the decoder's own limit, far past ours
            raise ParseError(f"JSON parse error - nested deeper than {limit} levels") from exc
        if problem := json_problem(data, limit):
            raise ParseError(f"JSON parse error - {problem}")
        return data

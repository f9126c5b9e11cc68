"""Serializer fields that take JSON values only of the type the schema documents.

DRF's own fields coerce: ``"true"``, ``1`` and ``"on"`` pass a BooleanField, ``5`` passes
a CharField, ``"7"`` an IntegerField, and CharField trims the whitespace that makes
``" "`` blank. The OpenAPI schema says boolean, string, integer; a client reading it and a
fuzzer checking it expect the server to refuse the rest, so JSON bodies use these.
Query parameters are strings by nature and keep DRF's fields.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return float(super().to_internal_value(data))


class StrictBooleanQueryField(serializers.BooleanField):
    """A query flag: ``true`` or ``false`` as the schema says, not DRF's yes/on/1."""

    def to_internal_value(self, data: Any) -> bool:
        if data not in ("true", "false"):
            self.fail("invalid", input=data)
        return data == "true"

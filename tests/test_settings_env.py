from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from toolrec_site.env import env_bool, env_float, env_int, env_json


def test_typed_settings_read_good_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_INT", "7")
    monkeypatch.setenv("X_FLOAT", "0.5")
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_JSON", '{"name": "semantic"}')
    assert env_int("X_INT", 1, minimum=1) == 7
    assert env_float("X_FLOAT", 1.0) == 0.5
    assert env_bool("X_BOOL") is True
    assert env_json("X_JSON", None) == {"name": "semantic"}
    assert env_int("X_MISSING", 3) == 3


@pytest.mark.parametrize(
    ("reader", "raw", "message"),
    [
        (lambda: env_int("X", 1), "seven", "an integer"),
        (lambda: env_int("X", 1, minimum=2), "1", ">= 2"),
        (lambda: env_float("X", 1.0), "fast", "a number"),
        (lambda: env_bool("X"), "maybe", "boolean"),
        (lambda: env_json("X", None), "{oops", "JSON"),
    ],
)
def test_bad_settings_fail_loudly(monkeypatch: pytest.MonkeyPatch, reader: object, raw: str, message: str) -> None:
    monkeypatch.setenv("X", raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        reader()  # type: ignore[operator]

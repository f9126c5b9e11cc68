"""A variant's (or the default's) policy JSON, checked before it is saved.

`policy_from_json` in the engine ignores unknown keys and raises one message for the whole
object; an operator needs to know which field is wrong, and a typo such as "aplha" must not
be dropped silently, so each field is checked on its own here."""

from __future__ import annotations

import dataclasses
from typing import Any

from recommender.engine.policy import POLICY_PRESETS, PolicyConfig, policy_from_json
from toolrec_site.errors import ToolrecError

_FIELDS = {f.name: f for f in dataclasses.fields(PolicyConfig)}


class InvalidPolicy(ToolrecError):
    code = "invalid_policy"


def _type_error(name: str, value: Any) -> str | None:
    default = _FIELDS[name].default
    if isinstance(value, bool) or not isinstance(
        value, type(default) if not isinstance(default, float) else (int, float)
    ):
        return f"must be a {type(default).__name__}, not {type(value).__name__}"
    return None


def policy_validate(raw: Any, *, field: str = "policy") -> dict[str, Any]:
    """The policy as it will be stored (a preset name is expanded); raises InvalidPolicy
    whose message and details name the bad field as `policy.<name>`."""
    if isinstance(raw, str):
        if raw not in POLICY_PRESETS:
            known = ", ".join(sorted(POLICY_PRESETS))
            raise InvalidPolicy(f"{field}: unknown preset {raw!r} (known: {known})", details={field: raw})
        raw = dict(POLICY_PRESETS[raw])
    if not isinstance(raw, dict):
        raise InvalidPolicy(f"{field}: must be a JSON object or a preset name", details={field: type(raw).__name__})
    if "name" not in raw:
        raise InvalidPolicy(f"{field}.name: is required (one of semantic, bandit, ltr, hybrid)")
    for name, value in raw.items():
        where = f"{field}.{name}"
        if name not in _FIELDS:
            raise InvalidPolicy(f"{where}: unknown field", details={where: "unknown field"})
        problem = _type_error(name, value)
        if problem is None:
            try:
                PolicyConfig(**{name: value})
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            raise InvalidPolicy(f"{where}: {problem}", details={where: problem})
    try:
        policy_from_json(raw)
    except ValueError as exc:  # a combination of fields (none today), named as the object
        raise InvalidPolicy(f"{field}: {exc}") from exc
    return dict(raw)

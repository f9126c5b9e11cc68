"""The answers of the toolrec API, typed (frozen dataclasses built from the JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Match:
    """How likely the top tool is to be used: `good`, `weak` or `none` (fall back or ask)."""

    label: str
    probability: float
    basis: str = "retrieval"  # "retrieval": a prior on similarity; "feedback": fitted on the log


@dataclass(frozen=True)
class RecommendedTool:
    tool_id: int
    name: str  # the function name: unique in the catalog, what the model calls it by
    rank: int
    score: float
    function: dict[str, Any]  # the OpenAI Chat tools entry (always)
    definition: dict[str, Any]  # the entry in the requested format
    reason: str | None = None
    key: str = ""  # "namespace/name" in the catalog

    @property
    def function_name(self) -> str:
        """The name a model calls it by (unique across namespaces)."""
        return str(self.function["function"]["name"])


@dataclass(frozen=True)
class Recommendation:
    recommendation_id: str
    tools: list[RecommendedTool]
    match: Match
    format: str = "openai"
    tool_tokens: int = 0
    policy: str = ""
    variant: str = ""
    experiment: str = ""
    snapshot_version: int = 0
    latency_ms: float = 0.0
    tool_choice: dict[str, Any] | None = None
    tool_references: list[dict[str, Any]] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Recommendation:
        match = body.get("match") or {"label": "none", "probability": 0.0}
        return cls(
            recommendation_id=str(body["recommendation_id"]),
            tools=[
                RecommendedTool(
                    tool_id=int(t["tool_id"]),
                    name=str(t["name"]),
                    rank=int(t["rank"]),
                    score=float(t["score"]),
                    function=t["function"],
                    definition=t.get("definition", t["function"]),
                    reason=t.get("reason"),
                    key=str(t.get("key", "")),
                )
                for t in body.get("tools", [])
            ],
            match=Match(str(match["label"]), float(match["probability"]), str(match.get("basis", "retrieval"))),
            format=str(body.get("format", "openai")),
            tool_tokens=int(body.get("tool_tokens", 0)),
            policy=str(body.get("policy", "")),
            variant=str(body.get("variant", "")),
            experiment=str(body.get("experiment", "")),
            snapshot_version=int(body.get("snapshot_version", 0)),
            latency_ms=float(body.get("latency_ms", 0.0)),
            tool_choice=body.get("tool_choice"),
            tool_references=body.get("tool_references"),
            raw=body,
        )

    @property
    def names(self) -> list[str]:
        """The names a model calls the recommended tools by, best first."""
        return [t.function_name for t in self.tools]


@dataclass(frozen=True)
class FeedbackEvent:
    tool: str  # the name the model called (or the catalog name)
    used: bool = True
    reward: float | None = None
    event_id: str | None = None  # yours: a retry with the same id counts once

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"tool": self.tool, "used": self.used}
        if self.reward is not None:
            body["reward"] = self.reward
        if self.event_id is not None:
            body["event_id"] = self.event_id
        return body


@dataclass(frozen=True)
class FeedbackResult:
    recorded: int
    duplicates: int

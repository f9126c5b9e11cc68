"""The one entry point of explicit feedback, for every face of the service: REST
(`api.py`) and the MCP server's `report_tool_use` validate and record it here, so a use
reported either way is the same event and a retry through either counts once."""

from __future__ import annotations

from typing import Any

from access.models import ApiKey
from feedback.serializers import FeedbackRequestSerializer
from feedback.services import FeedbackItem, feedback_record


def feedback_answer(*, api_key: ApiKey, payload: Any) -> dict[str, int]:
    """Validate a feedback body (``events: [...]`` or one event's fields), record it, and
    return the answer body. Bad input raises DRF's ValidationError, domain errors ToolrecError."""
    serializer = FeedbackRequestSerializer(data=payload)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    outcome = feedback_record(
        api_key=api_key,
        recommendation_id=data["recommendation_id"],
        items=[
            FeedbackItem(tool=e["tool"], used=e["used"], reward=e.get("reward"), event_id=e.get("event_id"))
            for e in data["events"]
        ],
    )
    return {"recorded": outcome.recorded, "duplicates": outcome.duplicates}

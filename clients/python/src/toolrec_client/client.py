"""Sync and async clients of the toolrec API, on httpx.

Both retry a request that got 429 or a 5xx, or that could not connect or timed out, with
exponential backoff and full jitter, honouring a `Retry-After` header (seconds). Feedback
is safe to retry: every event carries an id (yours, or one derived from the recommendation,
tool and outcome by the service), so a retry counts once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from toolrec_client.models import FeedbackEvent, FeedbackResult, Recommendation

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ToolrecError(Exception):
    """An error answer of the service: `status`, `code` and `message` from its JSON body."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details

    @classmethod
    def from_response(cls, response: httpx.Response) -> ToolrecError:
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        return cls(
            response.status_code,
            error.get("code", "error"),
            error.get("message", response.text[:200]),
            error.get("details"),
        )


def _recommend_body(messages: Sequence[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": list(messages)}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def _feedback_body(recommendation_id: str, events: Iterable[FeedbackEvent]) -> dict[str, Any]:
    return {"recommendation_id": recommendation_id, "events": [e.to_json() for e in events]}


def _events(
    tool: str | None, used: bool, reward: float | None, event_id: str | None, events: Iterable[FeedbackEvent] | None
) -> list[FeedbackEvent]:
    if events is not None:
        return list(events)
    if tool is None:
        raise ValueError("give tool= or events=")
    return [FeedbackEvent(tool=tool, used=used, reward=reward, event_id=event_id)]


class _Retrying:
    def __init__(self, max_retries: int, backoff: float, max_backoff: float) -> None:
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after is not None:
            try:
                return min(float(retry_after), self.max_backoff)
            except ValueError:
                pass
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))

    def should_retry(self, attempt: int, response: httpx.Response | None) -> bool:
        return attempt < self.max_retries and (response is None or response.status_code in RETRY_STATUSES)


class ToolrecClient:
    """`ToolrecClient(base_url, api_key)`; a context manager closing its connection pool."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._retrying = _Retrying(max_retries, backoff, max_backoff)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.post(path, json=body, headers=self._headers)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError):
                if not self._retrying.should_retry(attempt, None):
                    raise
            if response is not None and response.status_code < 400:
                result: dict[str, Any] = response.json()
                return result
            if not self._retrying.should_retry(attempt, response):
                assert response is not None
                raise ToolrecError.from_response(response)
            time.sleep(self._retrying.delay(attempt, response))
            attempt += 1

    def recommend(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        k: int | None = None,
        user_id: str | None = None,
        conversation_id: str | None = None,
        format: str | None = None,
        max_tool_tokens: int | None = None,
        defer_loading: bool | None = None,
        filters: dict[str, Any] | None = None,
        explain: bool | None = None,
    ) -> Recommendation:
        """Recommend tools for the conversation (OpenAI-style messages)."""
        options = {
            "k": k,
            "user_id": user_id,
            "conversation_id": conversation_id,
            "format": format,
            "max_tool_tokens": max_tool_tokens,
            "defer_loading": defer_loading,
            "filters": filters,
            "explain": explain,
        }
        return Recommendation.from_json(self._post("/api/v1/recommendations", _recommend_body(messages, options)))

    def feedback(
        self,
        recommendation_id: str,
        tool: str | None = None,
        used: bool = True,
        *,
        reward: float | None = None,
        event_id: str | None = None,
        events: Iterable[FeedbackEvent] | None = None,
    ) -> FeedbackResult:
        """Report that a recommended tool was used (or not); or several `events` at once."""
        body = _feedback_body(recommendation_id, _events(tool, used, reward, event_id, events))
        result = self._post("/api/v1/feedback", body)
        return FeedbackResult(int(result["recorded"]), int(result["duplicates"]))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ToolrecClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncToolrecClient:
    """The async twin of `ToolrecClient` (`await client.recommend(...)`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._retrying = _Retrying(max_retries, backoff, max_backoff)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.post(path, json=body, headers=self._headers)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError):
                if not self._retrying.should_retry(attempt, None):
                    raise
            if response is not None and response.status_code < 400:
                result: dict[str, Any] = response.json()
                return result
            if not self._retrying.should_retry(attempt, response):
                assert response is not None
                raise ToolrecError.from_response(response)
            await asyncio.sleep(self._retrying.delay(attempt, response))
            attempt += 1

    async def recommend(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        k: int | None = None,
        user_id: str | None = None,
        conversation_id: str | None = None,
        format: str | None = None,
        max_tool_tokens: int | None = None,
        defer_loading: bool | None = None,
        filters: dict[str, Any] | None = None,
        explain: bool | None = None,
    ) -> Recommendation:
        options = {
            "k": k,
            "user_id": user_id,
            "conversation_id": conversation_id,
            "format": format,
            "max_tool_tokens": max_tool_tokens,
            "defer_loading": defer_loading,
            "filters": filters,
            "explain": explain,
        }
        return Recommendation.from_json(await self._post("/api/v1/recommendations", _recommend_body(messages, options)))

    async def feedback(
        self,
        recommendation_id: str,
        tool: str | None = None,
        used: bool = True,
        *,
        reward: float | None = None,
        event_id: str | None = None,
        events: Iterable[FeedbackEvent] | None = None,
    ) -> FeedbackResult:
        body = _feedback_body(recommendation_id, _events(tool, used, reward, event_id, events))
        result = await self._post("/api/v1/feedback", body)
        return FeedbackResult(int(result["recorded"]), int(result["duplicates"]))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncToolrecClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

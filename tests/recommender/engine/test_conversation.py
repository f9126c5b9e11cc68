"""read_conversation: what the recommender reads out of OpenAI-style messages."""

from __future__ import annotations

from typing import Any

import pytest

from recommender.engine.conversation import (
    MAX_QUERY_TEXTS,
    looks_like_error,
    read_conversation,
    split_request,
)


def test_it_reads_the_last_user_message_and_counts_messages() -> None:
    ctx = read_conversation(
        [
            {"role": "system", "content": "You are a helpful travel agent."},
            {"role": "user", "content": "Find me a flight to Lisbon"},
            {"role": "assistant", "content": "Sure, for which dates?"},
            {"role": "user", "content": "Next Friday"},
        ]
    )
    assert ctx.last_user_message == "Next Friday"
    assert ctx.message_count == 4


def test_the_context_keeps_recent_turns_newest_last_without_the_system_prompt() -> None:
    ctx = read_conversation(
        [
            {"role": "system", "content": "SYSTEM PROMPT SECRET"},
            {"role": "user", "content": "Find me a flight to Lisbon"},
            {"role": "assistant", "content": "Sure, for which dates?"},
            {"role": "user", "content": "Next Friday"},
        ]
    )
    assert "SYSTEM PROMPT" not in ctx.context
    assert ctx.context.endswith("Next Friday")
    assert ctx.context.index("Lisbon") < ctx.context.index("which dates") < ctx.context.index("Next Friday")
    assert ctx.queries() == ["Next Friday", ctx.context]


def test_the_context_respects_max_context_chars() -> None:
    messages = [{"role": "user", "content": f"turn {i} " + "word " * 40} for i in range(6)]
    ctx = read_conversation(messages, max_context_chars=150)
    assert 0 < len(ctx.context) <= 150


def test_a_single_message_is_embedded_once() -> None:
    ctx = read_conversation([{"role": "user", "content": "What is the weather\nin Oslo?"}])
    assert ctx.context == ctx.last_user_message
    assert ctx.queries() == ["What is the weather\nin Oslo?"]


def test_it_reads_text_parts_and_ignores_other_parts() -> None:
    ctx = read_conversation(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this picture"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "text", "text": "and translate its caption"},
                ],
            }
        ]
    )
    assert ctx.last_user_message == "Describe this picture\nand translate its caption"


def test_called_tools_come_in_call_order_from_tool_calls_and_legacy_functions() -> None:
    ctx = read_conversation(
        [
            {"role": "user", "content": "weather and news please"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "get_news", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "b", "content": "headlines"},
            {"role": "assistant", "content": None, "function_call": {"name": "convert", "arguments": "{}"}},
            {"role": "function", "name": "convert", "content": "42"},
            {"role": "function", "name": "lookup", "content": "orphan result"},
        ]
    )
    assert ctx.called_tools == ("get_weather", "get_news", "convert", "lookup")


@pytest.mark.parametrize(
    "result",
    [
        'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad',
        '{"status": 404, "message": "no such city"}',
        "HTTP 503 Service Unavailable",
        "HTTP/1.1 502 Bad Gateway",
        '{"error": "rate limit exceeded"}',
        "Permission denied",
    ],
)
def test_a_failing_tool_result_sets_has_error(result: str) -> None:
    ctx = read_conversation(
        [
            {"role": "user", "content": "run it"},
            {"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "run"}}]},
            {"role": "tool", "tool_call_id": "1", "content": result},
        ]
    )
    assert ctx.has_error


@pytest.mark.parametrize(
    "result",
    [
        '{"status": 200, "items": [1, 2]}',
        "HTTP/1.1 200 OK",
        '{"error": null, "data": "ok"}',
        '{"errors": []}',
        "done, no errors",
    ],
)
def test_a_successful_tool_result_does_not_set_has_error(result: str) -> None:
    assert not looks_like_error(result)


def test_error_words_in_the_user_message_are_not_a_tool_error() -> None:
    ctx = read_conversation([{"role": "user", "content": "Explain what a 404 error means"}])
    assert not ctx.has_error


@pytest.mark.parametrize(
    "text",
    [
        "Why does this fail?\n```python\nprint(x)\n```",
        "def load(path):\n    return open(path).read()",
        "const total = items.reduce((a, b) => a + b, 0);",
        "SELECT name FROM users WHERE id = 3",
    ],
)
def test_code_in_the_conversation_sets_has_code(text: str) -> None:
    assert read_conversation([{"role": "user", "content": text}]).has_code


def test_plain_prose_does_not_set_has_code() -> None:
    ctx = read_conversation([{"role": "user", "content": "Plan a weekend in Rome; I like museums (and pasta)."}])
    assert not ctx.has_code
    assert not ctx.has_error


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{}],
        [{"role": "user"}],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": 42}],
        [{"role": "user", "content": [None, 3, {"type": "text"}, {"text": 5}]}],
        [{"role": "assistant", "tool_calls": "not a list"}],
        [{"role": "assistant", "tool_calls": [None, {"function": None}, {"function": {"name": 3}}]}],
        [{"role": "function", "name": None}],
        [{"role": 7, "content": "x"}],
        ["not a message", 3, None],
    ],
)
def test_odd_but_valid_json_never_raises(messages: list[Any]) -> None:
    ctx = read_conversation(messages)
    assert ctx.last_user_message == ""
    assert ctx.called_tools == ()
    assert ctx.sub_queries == ()


def test_an_empty_conversation_gives_no_queries() -> None:
    ctx = read_conversation([])
    assert ctx.queries() == []
    assert ctx.message_count == 0


def test_a_multi_part_request_is_split_into_its_needs() -> None:
    parts = split_request("What's the weather in Paris tomorrow? And also get me the EUR to USD exchange rate.")
    assert parts == ("What's the weather in Paris tomorrow?", "get me the EUR to USD exchange rate.")


def test_an_enumerated_request_keeps_every_need_within_two_sub_queries() -> None:
    parts = split_request("1. list my open GitHub issues 2. summarise each one 3. post the summary to Slack")
    assert len(parts) == 2
    joined = " ".join(parts)
    for need in ("GitHub issues", "summarise each one", "post the summary to Slack"):
        assert need in joined


def test_a_plain_and_between_two_clauses_splits_but_not_inside_a_noun_phrase() -> None:
    assert split_request("Show the current stock price of Apple and any recent news about the company") == (
        "Show the current stock price of Apple",
        "any recent news about the company",
    )
    assert split_request("Compare stocks and bonds") == ()


def test_a_single_need_is_not_split() -> None:
    assert split_request("Translate this paragraph into German, please.") == ()
    assert read_conversation([{"role": "user", "content": "Thanks. Weather in Oslo?"}]).sub_queries == ()


def test_the_number_of_texts_to_embed_stays_within_budget() -> None:
    request = "Book a flight to Rome. Find a hotel near the Colosseum. Rent a car at the airport. Get the weather."
    first_turn = read_conversation([{"role": "user", "content": request}])
    assert len(first_turn.sub_queries) == 2
    assert len(first_turn.queries()) <= MAX_QUERY_TEXTS
    later_turn = read_conversation(
        [
            {"role": "user", "content": "I am planning a trip to Italy in May"},
            {"role": "assistant", "content": "Great, how can I help?"},
            {"role": "user", "content": request},
        ]
    )
    assert len(later_turn.queries()) <= MAX_QUERY_TEXTS


def test_a_pasted_document_is_read_quickly_and_split_at_most_twice() -> None:
    document = "The service returned an answer and the client parsed it. " * 5000
    ctx = read_conversation([{"role": "user", "content": document}, {"role": "tool", "content": document}])
    assert len(ctx.sub_queries) <= 2
    assert all(len(q) <= 2000 for q in ctx.sub_queries)
    assert ctx.context == ctx.last_user_message


def test_previous_user_texts_are_the_turns_before_the_last() -> None:
    from recommender.engine.conversation import previous_user_texts

    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "user", "content": "three"},
    ]
    assert previous_user_texts(messages) == ["one", "two"]
    assert previous_user_texts(messages, limit=1) == ["two"]
    assert previous_user_texts(messages[:2]) == []
    assert previous_user_texts([]) == []

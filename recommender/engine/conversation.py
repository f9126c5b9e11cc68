"""Read an OpenAI-style message list into the few things retrieval needs.

Pure and forgiving: any JSON-shaped input gives a ``ConversationContext`` (possibly
empty), never an exception, because the service must answer even when a client sends
an odd message list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from recommender.engine.text import tokenize, truncate_words
from recommender.engine.types import ConversationContext

# The request path embeds ``ctx.queries()``: the last message, the sub-queries and the
# context when it differs from the last message. Each uncached text is one embedder run,
# the largest cost of a request, so read_conversation never produces more than this many.
MAX_QUERY_TEXTS = 3
MAX_SUB_QUERIES = 2
# Recent turns only: older turns are usually about a finished need.
RECENT_MESSAGES = 8
USER_TURN_CHARS = 300
ASSISTANT_TURN_CHARS = 120
# Tool results this many messages from the end still count for has_error.
ERROR_WINDOW = 6
ERROR_SCAN_CHARS = 800

_ERROR_WORDS = re.compile(
    r"traceback \(most recent call last\)|\bexception\b|\berror\b|\bfailed\b|\bfailure\b"
    r"|\bunauthori[sz]ed\b|\bforbidden\b|\bnot found\b|\btimed? ?out\b|\bpermission denied\b"
    r"|\binvalid\b|\brate limit",
    re.IGNORECASE,
)
# '"error": null', '"errors": []', 'no error' say there was no error.
_NOT_AN_ERROR = re.compile(
    r"""["']?errors?["']?\s*[:=]\s*(?:null|none|false|\[\s*\]|\{\s*\}|""|0)"""
    r"|\bno errors?\b|\bwithout errors?\b|\b0 errors?\b",
    re.IGNORECASE,
)
_STATUS = re.compile(
    r"""(?:status(?:[ _]?code)?|http(?:/\d(?:\.\d)?)?)["']?\s*[:= ]\s*["']?([1-5]\d\d)\b""", re.IGNORECASE
)
_CODE = re.compile(
    r"```|traceback \(most recent call last\)|^\s*(?:def|class|async def)\s+\w+.*:\s*$"
    r"|^\s*(?:import|from)\s+[\w.]+(?:\s+import\s+[\w*, ]+)?\s*$|#include\s*<"
    r"|\bfunction\s+\w+\s*\(|\b(?:const|let|var)\s+\w+\s*=|=>\s*\{|console\.log\("
    r"|\bSELECT\s+.+\s+FROM\s+\w+|^\s*\$ \w+|\w+\([^()\n]*\)\s*;\s*$"
    r"|\bat [\w.$]+\([\w.]+:\d+\)|File \"[^\"]+\", line \d+",
    re.IGNORECASE | re.MULTILINE,
)

# Where one need ends and the next begins inside a request: sentence ends (not the
# "2." of an enumeration), enumeration markers, and connectors that join two requests
# ("and also", "as well as", ", and get ...", ", find ..."). One alternation, so a
# single left-to-right pass finds every boundary and the text between stays verbatim.
_REQUEST_VERB = (
    r"(?:get|find|show|tell|give|provide|fetch|check|send|create|search|recommend|suggest"
    r"|list|calculate|convert|translate|book|look|make|generate|compare|analy[sz]e|share"
    r"|retrieve|download|upload|schedule|post|set|add|remove|delete|update|notify|email"
    r"|open|summari[sz]e|draft|write|plan|track|monitor|order|buy|pay|play|read)\b"
)
_BOUNDARY = re.compile(
    r"(?<!\b\d\.)(?<!\b\d\d\.)(?<=[.?!;])\s+|\s*\n+\s*"
    r"|(?:^|\s)(?:\(?\d{1,2}[.)]|\(?[a-h]\)|[-*\u2022])\s+"
    r"|\b(?:first(?:ly)?|second(?:ly)?|third(?:ly)?|finally|lastly)\s*,\s*"
    r"|,?\s+(?:and\s+also|as\s+well\s+as|and\s+then|and\s+additionally|additionally"
    r"|in\s+addition(?:\s+to\s+that)?|moreover|furthermore|after\s+that|and\s+finally)\s+"
    r"|,?\s+and\s+(?=(?:can|could|would|will|please|then|i\s+(?:also\s+)?(?:want|need|would)"
    r"|i'd)\b|" + _REQUEST_VERB + r")"
    r"|,\s+(?=" + _REQUEST_VERB + r")"
    r"|(?P<weak>,?\s+and\s+)",
    re.IGNORECASE,
)
_LEADING_CONNECTOR = re.compile(
    r"^(?:(?:and|also|but|then|plus|so|as\s+well\s+as|additionally|moreover|furthermore"
    r"|in\s+addition)\b[\s,]*)+",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z0-9]+")
# A pasted document is not a list of requests: only its head is split.
MAX_SPLIT_CHARS = 2000
MIN_SUB_QUERY_WORDS = 2  # content words (not stop words) a need must have
WEAK_MIN_WORDS = 3


def read_conversation(messages: Sequence[Mapping[str, Any]], *, max_context_chars: int = 600) -> ConversationContext:
    """The last user request, a condensed recent context and conversation flags."""
    turns = [m for m in messages if isinstance(m, Mapping)] if _is_sequence(messages) else []
    if not turns:
        return ConversationContext(last_user_message="", context="")
    last_user = _last_user_text(turns)
    context, only_last = _condensed_context(turns, max_context_chars)
    if only_last:
        # Nothing but the last message itself: equal strings make ctx.queries() embed
        # it once instead of twice.
        context = last_user
    separate_context = bool(context) and context != last_user
    room = MAX_QUERY_TEXTS - 1 - int(separate_context)
    return ConversationContext(
        last_user_message=last_user,
        context=context,
        called_tools=_called_tools(turns),
        has_error=_has_error(turns[-ERROR_WINDOW:]),
        has_code=_has_code(turns[-RECENT_MESSAGES:]),
        message_count=len(turns),
        sub_queries=split_request(last_user, max_parts=min(MAX_SUB_QUERIES, room)),
    )


def split_request(text: str, *, max_parts: int = MAX_SUB_QUERIES) -> tuple[str, ...]:
    """The separate needs of a multi-part request, at most ``max_parts``; () if one need.

    Sentences, enumerations and clause-joining conjunctions ("and also", "as well as",
    "and then", ", and get ...") delimit needs. Fragments too short to name a need are
    glued to their neighbour; when there are more parts than ``max_parts`` adjacent parts
    are merged into groups of balanced length, so every need still appears in one
    sub-query and the number of texts to embed stays bounded.
    """
    if max_parts < 2 or not text:
        return ()
    text = truncate_words(text, MAX_SPLIT_CHARS)
    # Segments between strong boundaries (sentences, enumerations, explicit connectors),
    # each a list of (separator, body) pieces between weak boundaries (a plain "and").
    segments: list[tuple[str, list[tuple[str, str]]]] = [("", [])]
    position, separator = 0, ""
    for match in _BOUNDARY.finditer(text):
        segments[-1][1].append((separator, text[position : match.start()]))
        position, separator = match.end(), match.group(0)
        if match.group("weak") is None:
            segments.append((separator, []))
            separator = ""
    segments[-1][1].append((separator, text[position:]))
    # "stocks and bonds" is one need: a weak boundary splits only between two pieces of
    # WEAK_MIN_WORDS content words each. Then a part too short to name a need joins its
    # neighbour. Glued pieces keep their separator, so the text stays verbatim.
    parts: list[tuple[str, str]] = []  # (separator before, text)
    for strong_sep, pieces in segments:
        clauses = _glue([(sep, body) for sep, body in pieces], WEAK_MIN_WORDS)
        if clauses:
            clauses[0] = (strong_sep, clauses[0][1])
        parts.extend(clauses)
    parts = _glue(parts, MIN_SUB_QUERY_WORDS)
    if len(parts) < 2:
        return ()
    groups = _balanced_groups(parts, max_parts)
    return tuple(_LEADING_CONNECTOR.sub("", g.strip(" ,;:")).strip(" ,;:") for g in groups)


def _glue(pieces: list[tuple[str, str]], minimum: int) -> list[tuple[str, str]]:
    """Join each piece with fewer than ``minimum`` content words to its neighbour."""
    parts: list[tuple[str, str]] = []
    for sep, body in pieces:
        if not body.strip(" ,;:"):
            continue
        if parts and min(_n_content_words(body), _n_content_words(parts[-1][1])) < minimum:
            parts[-1] = (parts[-1][0], f"{parts[-1][1]}{sep}{body}")
        else:
            parts.append((sep, body))
    return parts


def _n_content_words(text: str) -> int:
    return len(tokenize(text, stem=False))


def _balanced_groups(parts: list[tuple[str, str]], n_groups: int) -> list[str]:
    """Merge adjacent parts into at most n_groups groups of similar length, in order."""
    if len(parts) <= n_groups:
        return [text for _, text in parts]
    total = sum(len(p) for _, p in parts)
    groups: list[list[tuple[str, str]]] = [[]]
    done = 0
    for i, (sep, part) in enumerate(parts):
        remaining_parts = len(parts) - i
        remaining_groups = n_groups - len(groups)
        boundary = total * len(groups) / n_groups
        if (
            groups[-1]
            and remaining_groups > 0
            and (done + len(part) / 2 > boundary or remaining_parts <= remaining_groups)
        ):
            groups.append([])
        groups[-1].append((sep, part))
        done += len(part)
    return [g[0][1] + "".join(sep + part for sep, part in g[1:]) for g in groups]


def _is_sequence(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def content_text(content: object) -> str:
    """Text of a message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content.strip()
    if _is_sequence(content):
        texts: list[str] = []
        for part in content:  # type: ignore[attr-defined]
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
                elif isinstance(text, Mapping) and isinstance(text.get("value"), str):
                    texts.append(text["value"])
        return "\n".join(t.strip() for t in texts if t.strip())
    if isinstance(content, Mapping) and isinstance(content.get("text"), str):
        return str(content["text"]).strip()
    return ""


def _role(message: Mapping[str, Any]) -> str:
    role = message.get("role")
    return role if isinstance(role, str) else ""


def _last_user_text(turns: list[Mapping[str, Any]]) -> str:
    for message in reversed(turns):
        if _role(message) == "user":
            text = content_text(message.get("content"))
            if text:
                return text
    return ""


def _condensed_context(turns: list[Mapping[str, Any]], max_chars: int) -> tuple[str, bool]:
    """Recent user turns and short assistant text, newest last, within max_chars.

    The flag says the context is only (a cut of) the newest user message. The system
    prompt is left out: it is long, constant over a conversation and mostly
    about style, so it would dilute every query the same way. Tool results are left out
    for the same reason (raw JSON); the tools called are in ``called_tools``.
    """
    pieces: list[str] = []
    used = 0
    first_is_user = False
    for message in reversed(turns[-RECENT_MESSAGES:]):
        role = _role(message)
        if role == "user":
            limit = USER_TURN_CHARS if pieces else max_chars
        elif role == "assistant":
            limit = ASSISTANT_TURN_CHARS
        else:
            continue
        text = " ".join(content_text(message.get("content")).split())
        if not text:
            continue
        room = max_chars - used - (1 if pieces else 0)
        piece = truncate_words(text, min(limit, room))
        if not piece:
            break
        if not pieces:
            first_is_user = role == "user"
        pieces.append(piece)
        used += len(piece) + (1 if len(pieces) > 1 else 0)
    only_last = len(pieces) == 1 and first_is_user
    return " ".join(reversed(pieces)), only_last


def _function_name(call: object) -> str:
    if not isinstance(call, Mapping):
        return ""
    function = call.get("function")
    name = function.get("name") if isinstance(function, Mapping) else call.get("name")
    return name if isinstance(name, str) else ""


def _called_tools(turns: list[Mapping[str, Any]]) -> tuple[str, ...]:
    called: list[str] = []
    pending_legacy: list[str] = []  # legacy function_call names awaiting their result
    for message in turns:
        role = _role(message)
        if role == "assistant":
            calls: object = message.get("tool_calls")
            for call in calls if isinstance(calls, list | tuple) else ():
                if call_name := _function_name(call):
                    called.append(call_name)
            if legacy_name := _function_name(message.get("function_call")):
                called.append(legacy_name)
                pending_legacy.append(legacy_name)
        elif role == "function":
            result_name: object = message.get("name")
            if isinstance(result_name, str) and result_name:
                if result_name in pending_legacy:
                    pending_legacy.remove(result_name)
                else:  # a result whose call was not sent: the call still happened
                    called.append(result_name)
    return tuple(called)


def looks_like_error(text: str) -> bool:
    """A tool result reads as a failure: traceback, error words, or HTTP status >= 400."""
    head = text[:ERROR_SCAN_CHARS]
    for match in _STATUS.finditer(head):
        if int(match.group(1)) >= 400:
            return True
    cleaned = _NOT_AN_ERROR.sub(" ", head)
    return bool(_ERROR_WORDS.search(cleaned))


def _has_error(turns: list[Mapping[str, Any]]) -> bool:
    for message in turns:
        if _role(message) not in ("tool", "function"):
            continue
        if message.get("is_error") is True:
            return True
        if looks_like_error(content_text(message.get("content"))):
            return True
    return False


def _has_code(turns: list[Mapping[str, Any]]) -> bool:
    return any(
        _role(m) in ("user", "assistant", "tool", "function")
        and bool(_CODE.search(content_text(m.get("content"))[:4000]))
        for m in turns
    )


def previous_user_texts(messages: Sequence[Mapping[str, Any]], *, limit: int = 3, max_chars: int = 300) -> list[str]:
    """The user turns before the last one, newest last (at most `limit`, each cut to
    `max_chars`): what the service embeds (mostly from cache) to stand for the context."""
    turns = [m for m in messages if isinstance(m, Mapping)] if _is_sequence(messages) else []
    texts = [content_text(m.get("content")) for m in turns if _role(m) == "user"]
    texts = [t[:max_chars] for t in texts if t]
    return texts[-(limit + 1) : -1] if len(texts) > 1 else []

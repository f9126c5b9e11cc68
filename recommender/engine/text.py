"""Tool and query text: what the dense embedder reads and what BM25 tokenises.

Two views of one tool. The embedder gets a readable paragraph (identifier names split
into words, because ``getWeatherForecast`` is one unknown word-piece soup to MiniLM but
three words it knows). BM25 gets the same fields with the short, discriminative ones
(name, family) repeated: repeating a field's tokens is the classic cheap stand-in for
BM25F field weights.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import Stemmer  # PyStemmer: snowball stemmers in C

from recommender.engine.types import ToolDoc

EMBEDDING_TEXT_MAX_CHARS = 1000

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[_\-./:|]+")
_TOKEN = re.compile(r"[a-z0-9]+")
_SPACES = re.compile(r"\s+")

# Function words and request boilerplate ("can you please give me ...") carry no
# signal about which tool is meant; dropping them keeps BM25 from rewarding tools
# whose descriptions happen to be chatty.
_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during
    each few for from further had has have having he her here hers herself him
    himself his how i if in into is it its itself just me more most my myself no nor
    not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves
    please want need like know let help thank thanks im ive id ill youre dont cant
    could would should may might must shall get give tell provide show find fetch
    retrieve us one
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class FieldWeights:
    """How many times each field's tokens enter a tool's BM25 document."""

    name: int = 3
    family: int = 2
    description: int = 1
    category: int = 1
    parameters: int = 1


def split_identifier(text: str) -> str:
    """``getWeatherForecast`` / ``get_weather-forecast`` -> ``get Weather Forecast``."""
    return _SPACES.sub(" ", _CAMEL_BOUNDARY.sub(" ", _NON_WORD.sub(" ", text))).strip()


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    return Stemmer.Stemmer("english")


def tokenize(text: str, *, stem: bool = True) -> list[str]:
    """Lower-cased word tokens, identifiers split, stop words dropped, stemmed."""
    words = [w for w in _TOKEN.findall(split_identifier(text).lower()) if w not in STOPWORDS]
    if not stem or not words:
        return words
    stems: list[str] = _stemmer().stemWords(words)
    return stems


def parameter_fields(parameters: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(name, description) of each top-level property of a JSON-schema object."""
    if not isinstance(parameters, Mapping):
        return []
    properties = parameters.get("properties")
    if not isinstance(properties, Mapping):
        return []
    fields: list[tuple[str, str]] = []
    for name, spec in properties.items():
        description = spec.get("description", "") if isinstance(spec, Mapping) else ""
        fields.append((str(name), description if isinstance(description, str) else ""))
    return fields


def embedding_text(doc: ToolDoc) -> str:
    """Readable text for the dense embedder, at most ``EMBEDDING_TEXT_MAX_CHARS``.

    The order puts what identifies the tool first, so truncation cuts parameter
    details rather than the name or description.
    """
    head = split_identifier(doc.name)
    if doc.family and split_identifier(doc.family).lower() not in head.lower():
        head = f"{head} ({split_identifier(doc.family)})"
    parts = [head]
    if doc.description.strip():
        parts.append(_SPACES.sub(" ", doc.description).strip())
    if doc.category:
        parts.append(f"Category: {doc.category}")
    params = [
        f"{split_identifier(name)}{': ' + _SPACES.sub(' ', desc).strip() if desc else ''}"
        for name, desc in parameter_fields(doc.parameters)
    ]
    if params:
        parts.append("Parameters: " + "; ".join(params))
    text = ". ".join(p.rstrip(". ") for p in parts)
    if len(text) > EMBEDDING_TEXT_MAX_CHARS:
        text = text[: EMBEDDING_TEXT_MAX_CHARS - 3].rsplit(" ", 1)[0] + "..."
    return text


def sparse_tokens(doc: ToolDoc, weights: FieldWeights = FieldWeights()) -> list[str]:
    """The BM25 document of a tool: field tokens repeated by their field weight."""
    fields: list[tuple[str, int]] = [
        (doc.name, weights.name),
        (doc.family, weights.family),
        (doc.description, weights.description),
        (doc.category, weights.category),
        (" ".join(name for name, _ in parameter_fields(doc.parameters)), weights.parameters),
    ]
    tokens: list[str] = []
    for text, weight in fields:
        if text and weight > 0:
            tokens.extend(tokenize(text) * weight)
    return tokens


def text_hash(text: str) -> str:
    """sha256 hex of the text, so a rebuild re-embeds only tools whose text changed."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def truncate_words(text: str, max_chars: int) -> str:
    """Cut at a word boundary; ``max_chars <= 0`` gives the empty string."""
    if max_chars <= 0:
        return ""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0]
    return cut or text[:max_chars]

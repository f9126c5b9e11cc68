"""The N-tool catalog: the shared ToolBench and MetaTool tools plus seeded variants of them
(renamed endpoints and toolkits, reworded descriptions), as JSONL in the datasets' format."""

from __future__ import annotations

import json
import pathlib
import random
import re
from typing import Any

from . import DATASETS


def _table(text: str) -> dict[str, list[str]]:
    """``word: alternative, alternative`` lines -> {word: [alternatives]}."""
    pairs = (line.split(":", 1) for line in text.strip().splitlines())
    return {word.strip(): [alt.strip() for alt in alts.split(",")] for word, alts in pairs}


# Endpoint verbs, nouns and phrasing that variants swap, so generated texts differ realistically.
VERBS = _table("""
get: Fetch, Retrieve, List, Lookup, Read, Query, Show
search: Find, Lookup, Query, Discover, Browse
list: Get, Browse, Enumerate, Fetch All
create: Add, New, Make, Register
update: Edit, Modify, Change
delete: Remove, Drop, Erase
fetch: Get, Retrieve, Load
check: Verify, Validate, Test
""")
NOUNS = _table("""
information: details, data, info
info: details, data
weather: forecast, climate
user: account, member, profile
users: accounts, members
product: item, listing
products: items, listings
price: cost, rate, quote
prices: costs, rates
movie: film, title
movies: films, titles
song: track, tune
songs: tracks, tunes
music: audio, songs
video: clip, footage
videos: clips, recordings
news: headlines, stories
company: business, firm, organisation
stock: equity, share
stocks: equities, shares
location: place, position, address
city: town, municipality
recipe: dish, meal
recipes: dishes, meals
book: title, volume
books: titles, publications
game: match, fixture
games: matches, fixtures
team: club, squad
player: athlete
players: athletes
image: picture, photo
images: pictures, photos
details: information, specifics
data: records, information
search: lookup, query
country: nation
countries: nations
email: mail, message
message: note, text
order: purchase
orders: purchases
hotel: accommodation, lodging
flight: air travel, trip
currency: money, exchange
crypto: cryptocurrency, token
job: position, vacancy
jobs: positions, vacancies
event: happening, occasion
events: happenings, occasions
category: group, section
categories: groups, sections
returns: gives back, provides, yields
provides: offers, supplies, returns
allows: lets, enables
latest: newest, most recent, current
popular: trending, top
""")
TOOLKIT_SUFFIXES = ["Pro", "Plus", "Hub", "Cloud", "Lite", "Express", "Connect", "Live", "360", "Central"]
TOOLKIT_SUFFIXES += ["Direct", "v2", "Next", "Labs", "Gateway", "One", "API"]
TOOLKIT_PREFIXES = ["Open", "Smart", "Quick", "Global", "My", "Easy", "Super", "Rapid", "Neo", "Fast", "True"]
IMPERATIVES = set(VERBS) | {"find", "retrieve", "generate", "convert", "provide", "send", "return", "lookup", "show"}
DESC_PREFIXES = ["Use this endpoint to ", "This API lets you ", "Call this to ", "Endpoint that helps you ", ""]
DESC_SUFFIXES = [
    " Results are returned as JSON.",
    " Data provided by {toolkit}.",
    " Rate limited per API key.",
    " Supports pagination.",
    " Updated daily.",
    "",
    "",
]
_NOUN_RE = re.compile(r"\b(" + "|".join(sorted(NOUNS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def _case_like(word: str, replacement: str) -> str:
    if word.isupper() and len(word) > 1:
        return replacement.upper()
    return replacement[:1].upper() + replacement[1:] if word[:1].isupper() else replacement


def _reword(text: str, rng: random.Random, rate: float) -> str:
    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        return _case_like(word, rng.choice(NOUNS[word.lower()])) if rng.random() < rate else word

    return _NOUN_RE.sub(swap, text)


def _rename_endpoint(name: str, rng: random.Random) -> str:
    words = name.split()
    if words and words[0].lower() in VERBS:
        words[0] = rng.choice(VERBS[words[0].lower()])
    elif rng.random() < 0.5:
        words.insert(0, rng.choice(["Get", "Fetch", "List", "Search", "Lookup"]))
    return _reword(" ".join(words), rng, 0.6)


def _rename_toolkit(toolkit: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return f"{toolkit} {rng.choice(TOOLKIT_SUFFIXES)}"
    if roll < 0.8:
        return f"{rng.choice(TOOLKIT_PREFIXES)} {toolkit}"
    return f"{rng.choice(TOOLKIT_PREFIXES)} {_reword(toolkit, rng, 1.0)} {rng.choice(TOOLKIT_SUFFIXES)}"


def _reword_description(text: str, toolkit: str, rng: random.Random) -> str:
    body = _reword(text or "", rng, 0.5).strip()
    first = body.split(maxsplit=1)[0].lower() if body else ""
    if first in IMPERATIVES:  # "Get the ..." -> "Use this endpoint to get the ..."
        body = rng.choice(DESC_PREFIXES) + body[:1].lower() + body[1:]
    return (body + rng.choice(DESC_SUFFIXES).format(toolkit=toolkit)).strip()


def _variant(base: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    row = dict(base)
    row["source"] = f"bench/generated:{base.get('source') or ''}"
    if base.get("toolkit"):  # a ToolBench endpoint: new toolkit, new endpoint name
        toolkit = _rename_toolkit(base["toolkit"], rng)
        name = _rename_endpoint(base["name"], rng) if rng.random() < 0.7 else base["name"]
        row.update(toolkit=toolkit, name=name, id=f"{toolkit}::{name}")
        row["description"] = _reword_description(base.get("description") or "", toolkit, rng)
    else:  # a MetaTool plugin: a competitor with a similar pitch
        stem = _reword(base["name"], rng, 1.0)
        name = rng.choice([f"{stem}_{rng.choice(TOOLKIT_SUFFIXES).lower()}", f"{rng.choice(TOOLKIT_PREFIXES)}{stem}"])
        row.update(name=name, id=name)
        row["description"] = _reword_description(base.get("description") or "", name, rng)
        if base.get("description_for_model"):
            row["description_for_model"] = _reword(base["description_for_model"], rng, 0.5)
    return row


def read_jsonl(path: pathlib.Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def catalog_path(work_dir: pathlib.Path, n_tools: int, seed: int) -> pathlib.Path:
    return work_dir / f"catalog_{n_tools}_seed{seed}.jsonl"


def build_catalog(n_tools: int, seed: int, path: pathlib.Path) -> dict[str, Any]:
    """The first `n_tools` dataset tools, then variants of random ones until there are `n_tools`;
    written to `path`. The same (n_tools, seed) gives the same file."""
    base = read_jsonl(DATASETS / "toolbench" / "tools.jsonl") + read_jsonl(DATASETS / "metatool" / "tools.jsonl")
    rows = base[:n_tools]
    seen = {r["id"] for r in rows}
    rng = random.Random(seed)
    order = list(range(len(base)))
    while len(rows) < n_tools:  # bounded: every pass adds at least one new id per base tool
        rng.shuffle(order)
        for i in order:
            if len(rows) >= n_tools:
                break
            row = _unique(_variant(base[i], rng), seen)
            seen.add(row["id"])
            rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return {
        "path": str(path),
        "tools": len(rows),
        "from_datasets": min(len(base), n_tools),
        "generated": max(0, len(rows) - len(base)),
    }


def _unique(row: dict[str, Any], seen: set[str]) -> dict[str, Any]:
    """A variant whose id is taken gets a number: " 2", " 3", ... (on its toolkit too, if any)."""
    for attempt in range(2, 100):
        if row["id"] not in seen:
            break
        suffix = f" {attempt}"
        row["name"] += suffix
        row["id"] += suffix
        if row.get("toolkit"):
            row["toolkit"] += suffix
    return row


def catalog_categories(path: pathlib.Path) -> dict[str, str]:
    """{tool id: category} of a built catalog; empty if there is none (a work dir set up elsewhere)."""
    tools = read_jsonl(path) if path.exists() else []
    return {t["id"]: t["category"] for t in tools if t.get("category")}

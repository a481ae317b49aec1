"""The instruction parser against the table in data/intents.toml, the merge order, and its speed."""

from __future__ import annotations

import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hybrid import profiles
from hybrid.errors import IntentError
from hybrid.intent import (
    DEFAULT_ALIASES,
    SETTINGS,
    build_request,
    parse_instruction,
    request_from_instruction,
)
from hybrid.models import Request

TABLE = tomllib.loads((Path(__file__).parent / "data" / "intents.toml").read_text(encoding="utf-8"))["case"]
INPUT_SIZE = 100_000_000


def _expected(case: dict[str, Any], bundled: dict[str, profiles.Profile]) -> dict[str, Any]:
    """Defaults, then the named profile's values, then what the case lists ("none" is None)."""
    defaults = Request()
    expected = {name: getattr(defaults, name) for name in SETTINGS}
    wanted = {k: (None if v == "none" else v) for k, v in case["expect"].items()}
    name = wanted.get("profile")
    if name:
        profile = bundled[name]
        expected.update(
            target_size_bytes=profile.max_bytes,
            max_height=profile.max_height,
            max_width=profile.max_width,
            fps=profile.fps,
            codec=profile.codec,
            audio=profile.audio,
            profile=name,
        )
    expected.update(wanted)
    return expected


@pytest.fixture(scope="module")
def bundled() -> dict[str, profiles.Profile]:
    return profiles.load_profiles(user_dir=Path("/nonexistent"))


def test_table_is_large_and_covers_both_languages() -> None:
    assert len(TABLE) >= 150
    chinese = [c for c in TABLE if any("\u4e00" <= ch <= "\u9fff" for ch in c["text"])]
    unclear = [c for c in TABLE if "error" in c]
    assert len(chinese) >= 30
    assert len(unclear) >= 15


@pytest.mark.parametrize("case", TABLE, ids=[c["text"][:50] for c in TABLE])
def test_instruction_table(case: dict[str, Any], bundled: dict[str, profiles.Profile]) -> None:
    if "error" in case:
        with pytest.raises(IntentError) as caught:
            request_from_instruction(case["text"], input_size_bytes=INPUT_SIZE, profiles=bundled)
        message = str(caught.value)
        assert case["error"] in message
        assert "\n" not in message
        return
    request = request_from_instruction(case["text"], input_size_bytes=INPUT_SIZE, profiles=bundled)
    got = {name: getattr(request, name) for name in SETTINGS}
    assert got == _expected(case, bundled)
    for name, source in case.get("sources", {}).items():
        assert request.sources[name] == source, name


def test_unclear_message_says_what_works() -> None:
    with pytest.raises(IntentError) as caught:
        parse_instruction("make it purple")
    message = str(caught.value)
    assert '"make it purple"' in message
    for form in ("25MB", "720p", "Discord", "first 30 seconds"):
        assert form in message
    assert IntentError("x").exit_code == 10


def test_conflict_names_both_phrases() -> None:
    with pytest.raises(IntentError, match=r'"under 50mb" and "max 25mb"'):
        parse_instruction("Under 50MB, max 25MB")


def test_understood_phrases_are_reported() -> None:
    intent = parse_instruction("hey can you please shrink this to 20mb for discord thanks")
    assert "to 20mb" in intent.phrases
    assert "discord" in intent.phrases


def test_relative_target_needs_the_input_size() -> None:
    intent = parse_instruction("half the size")
    assert intent.target_fraction == 0.5
    with pytest.raises(IntentError, match="needs the input"):
        build_request(None, intent, None)
    assert build_request(None, intent, None, input_size_bytes=4_288_306).target_size_bytes == 2_144_153


def test_short_aliases_need_a_preposition() -> None:
    # "x" is Twitter only after "for/on/to": every "1920x1080" holds an x
    assert parse_instruction("1920x1080").profile is None
    assert parse_instruction("post it on x").profile == "twitter"
    assert parse_instruction("send it via wa").profile == "whatsapp"
    with pytest.raises(IntentError):
        parse_instruction("wa")


def test_default_aliases_match_the_bundled_profiles(bundled: dict[str, profiles.Profile]) -> None:
    assert dict(DEFAULT_ALIASES) == profiles.alias_table(bundled)


def test_user_profile_aliases_reach_the_parser(bundled: dict[str, profiles.Profile]) -> None:
    aliases = {**DEFAULT_ALIASES, "work chat": "work"}
    assert parse_instruction("for the work chat", aliases=aliases).profile == "work"
    work = replace(bundled["email"], name="work", aliases=("work chat",), max_bytes=5_000_000)
    request = request_from_instruction("for the work chat", profiles={**bundled, "work": work})
    assert (request.profile, request.target_size_bytes) == ("work", 5_000_000)


# -- merging ---------------------------------------------------------------------------------------


def test_precedence_option_over_instruction_over_profile_over_default(bundled: dict[str, Any]) -> None:
    intent = parse_instruction("under 8MB at 480p for discord")
    request = build_request(
        {"target_size_bytes": 5_000_000}, intent, bundled["discord"], input_size_bytes=INPUT_SIZE
    )
    assert request.target_size_bytes == 5_000_000
    assert request.sources["target_size_bytes"] == "option"
    assert (request.max_height, request.max_width) == (480, None)
    assert request.sources["max_height"] == request.sources["max_width"] == "instruction"
    assert request.fps == 60.0
    assert request.sources["fps"] == "profile"
    assert request.preset == "medium"
    assert request.sources["preset"] == "default"
    assert set(request.sources) >= set(SETTINGS)


def test_picture_size_is_one_setting(bundled: dict[str, Any]) -> None:
    # An option's --max-height replaces the profile's whole box, not only its short side.
    request = build_request({"max_height": 360}, None, bundled["youtube"])
    assert (request.max_height, request.max_width) == (360, None)
    # "same resolution" lifts the profile's picture limit
    request = build_request(None, parse_instruction("same resolution"), bundled["whatsapp"])
    assert (request.max_height, request.max_width) == (None, None)
    assert request.target_size_bytes == bundled["whatsapp"].max_bytes


def test_profile_without_instruction_or_options(bundled: dict[str, Any]) -> None:
    request = build_request(None, None, bundled["email"])
    assert request.target_size_bytes == 14_500_000
    assert request.profile == "email"
    assert request.sources["profile"] == "profile"


def test_no_sources_at_all_gives_the_defaults() -> None:
    request = build_request()
    assert replace(request, sources={}) == Request()
    assert set(request.sources.values()) == {"default"}


def test_unknown_option_names_are_a_bug() -> None:
    with pytest.raises(ValueError, match="not Request settings"):
        build_request({"size": 1})


# -- speed -----------------------------------------------------------------------------------------


def test_parse_is_fast() -> None:
    texts = [c["text"] for c in TABLE if "error" not in c]
    for text in texts:  # warm up: the regular expressions compile once
        parse_instruction(text)
    rounds = 5
    started = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            parse_instruction(text)
    per_instruction_ms = (time.perf_counter() - started) * 1000 / (rounds * len(texts))
    assert per_instruction_ms < 10, f"{per_instruction_ms:.2f} ms per instruction"

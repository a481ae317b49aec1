"""Platform profiles: ``profiles/*.toml`` -> :class:`Profile`.

A profile states one platform's limits (exact bytes, picture, length, frame rate, codec, audio). The
bundled ones ship inside the package (``hybrid/_profiles``, which in a source tree is a link to the
repository's ``profiles/`` folder); user profiles in ``<config dir>/profiles/*.toml`` add to them or
replace one of the same name. The config dir is ``HYBRID_CONFIG_DIR`` when set, else
``click.get_app_dir("hybrid")``.

A profile file must have every key below and nothing else: a typo is an error naming the file and the
key, not a setting silently ignored. ``max_duration_s = inf`` says "no length limit".
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

from .errors import PlanError, ProfileError
from .models import AudioChoice, Codec
from .units import format_duration, format_size

ProfileOrigin = Literal["bundled", "user"]

REQUIRED_KEYS = (
    "description",
    "max_bytes",
    "max_height",
    "max_width",
    "max_duration_s",
    "fps",
    "codec",
    "audio",
)
OPTIONAL_KEYS = ("aliases", "audio_bitrate_bps", "container")
CODECS: tuple[Codec, ...] = ("h264", "hevc", "av1")
AUDIO_CHOICES: tuple[AudioChoice, ...] = ("keep", "remove")


@dataclass(frozen=True)
class Profile:
    """One platform's limits. ``max_height`` is the short side of the picture, ``max_width`` the long
    side (either way up, like :class:`~hybrid.models.Request`); ``max_duration_s`` is ``inf`` when the
    platform has no length limit."""

    name: str
    description: str
    max_bytes: int
    max_height: int
    max_width: int
    max_duration_s: float
    fps: float
    codec: Codec
    audio: AudioChoice
    container: Literal["mp4"] = "mp4"
    audio_bitrate_bps: int | None = None
    aliases: tuple[str, ...] = ()
    path: Path | None = None
    origin: ProfileOrigin = "bundled"


def config_dir() -> Path:
    """Where user settings live: ``HYBRID_CONFIG_DIR``, else the platform's app dir for hybrid."""
    explicit = os.environ.get("HYBRID_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    import click  # only the CLI's dependency decides the platform's convention

    return Path(click.get_app_dir("hybrid"))


def user_profiles_dir() -> Path:
    return config_dir() / "profiles"


def _bundled_files() -> list[tuple[str, str, Path | None]]:
    """(name, text, path) of each bundled profile, read through importlib.resources (works in wheels)."""
    folder = resources.files("hybrid") / "_profiles"
    out: list[tuple[str, str, Path | None]] = []
    if not folder.is_dir():
        return out
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            path = Path(str(entry)) if isinstance(entry, Path) else None
            out.append((entry.name[: -len(".toml")], entry.read_text(encoding="utf-8"), path))
    return out


def parse_profile(name: str, text: str, where: str, origin: ProfileOrigin = "bundled") -> Profile:
    """Validate one profile's TOML text; ``where`` names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where} is not valid TOML: {exc}") from None
    return _from_mapping(name, data, where, origin)


def _from_mapping(name: str, data: Mapping[str, Any], where: str, origin: ProfileOrigin) -> Profile:
    known = set(REQUIRED_KEYS) | set(OPTIONAL_KEYS)
    for key in data:
        if key not in known:
            raise ProfileError(f"{where}: unknown key {key!r} (known keys: {', '.join(sorted(known))})")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ProfileError(f"{where}: missing key {key!r}")

    def bad(key: str, wanted: str) -> ProfileError:
        return ProfileError(f"{where}: key {key!r} must be {wanted}, not {data[key]!r}")

    def positive_int(key: str) -> int:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise bad(key, "a whole number above zero")
        return value

    description = data["description"]
    if not isinstance(description, str) or not description.strip():
        raise bad("description", "a non-empty string")
    duration = data["max_duration_s"]
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not duration > 0:
        raise bad("max_duration_s", "a number of seconds above zero (inf for no limit)")
    fps = data["fps"]
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 1 <= fps <= 240:
        raise bad("fps", "a frame rate from 1 to 240")
    codec = data["codec"]
    if codec not in CODECS:
        raise bad("codec", " or ".join(repr(c) for c in CODECS))
    audio = data["audio"]
    if audio not in AUDIO_CHOICES:
        raise bad("audio", "'keep' or 'remove'")
    container = data.get("container", "mp4")
    if container != "mp4":
        raise bad("container", "'mp4'")
    audio_bitrate: int | None = None
    if "audio_bitrate_bps" in data:
        audio_bitrate = positive_int("audio_bitrate_bps")
    aliases = data.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise bad("aliases", "a list of non-empty strings")
    max_height, max_width = positive_int("max_height"), positive_int("max_width")
    if max_height > max_width:
        raise ProfileError(
            f"{where}: max_height ({max_height}) is the short side and max_width ({max_width}) the long "
            "side: max_height cannot be larger"
        )
    return Profile(
        name=name,
        description=description.strip(),
        max_bytes=positive_int("max_bytes"),
        max_height=max_height,
        max_width=max_width,
        max_duration_s=float(duration),
        fps=float(fps),
        codec=cast(Codec, codec),
        audio=cast(AudioChoice, audio),
        container="mp4",
        audio_bitrate_bps=audio_bitrate,
        aliases=tuple(a.strip().lower() for a in aliases),
        origin=origin,
    )


def load_profiles(user_dir: Path | None = None) -> dict[str, Profile]:
    """Every profile by name: the bundled ones, then the user's (which add or replace by name).

    ``user_dir`` defaults to :func:`user_profiles_dir`. Raises ProfileError naming the file and key
    of the first malformed profile.
    """
    found: dict[str, Profile] = {}
    for name, text, path in _bundled_files():
        profile = parse_profile(name, text, f"bundled profile {name}.toml")
        found[name] = replace(profile, path=path)
    folder = user_profiles_dir() if user_dir is None else user_dir
    try:
        user_files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    except OSError as exc:  # e.g. a config folder this user may not enter
        raise ProfileError(f"cannot read the profiles folder {folder}: {exc.strerror or exc}") from None
    if user_files:
        for path in user_files:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ProfileError(f"cannot read profile {path}: {exc}") from None
            profile = parse_profile(path.stem.lower(), text, str(path), "user")
            found[profile.name] = replace(profile, path=path)
    alias_table(found)  # two profiles claiming one word is an error now, not a coin toss later
    return found


def get_profile(name: str, profiles: Mapping[str, Profile] | None = None) -> Profile:
    """The profile called ``name`` (case-insensitive), or ProfileError listing the known ones."""
    table = load_profiles() if profiles is None else profiles
    key = name.strip().lower()
    if key in table:
        return table[key]
    for profile in table.values():  # "--profile x" finds twitter by its alias
        if key in profile.aliases:
            return profile
    raise ProfileError(f"unknown profile {name!r} (known: {', '.join(sorted(table))})")


def alias_table(profiles: Mapping[str, Profile]) -> dict[str, str]:
    """alias -> profile name, for the instruction parser: every name and every alias."""
    table = {profile.name: profile.name for profile in profiles.values()}
    for profile in profiles.values():
        for alias in profile.aliases:
            if table.get(alias, profile.name) != profile.name:
                other = profiles[table[alias]]
                raise ProfileError(
                    f"{profile.path or profile.name}: alias {alias!r} is already "
                    f"{'the name' if alias == other.name else 'an alias'} of profile {other.name!r}"
                )
            table[alias] = profile.name
    return table


def check_duration(profile: Profile, duration_s: float) -> None:
    """Refuse an output longer than the profile allows, saying how to trim it."""
    if math.isfinite(profile.max_duration_s) and duration_s > profile.max_duration_s + 0.05:
        limit = profile.max_duration_s
        raise PlanError(
            f"the video is {format_duration(duration_s)} long but {profile.description} allows at most "
            f'{format_duration(limit)}: trim it, e.g. add "first {limit:g} seconds" to the instruction'
        )


def describe(profile: Profile) -> str:
    """One line for ``hybrid profiles``."""
    length = (
        "any length"
        if not math.isfinite(profile.max_duration_s)
        else (f"≤ {format_duration(profile.max_duration_s)}")
    )
    audio = "no audio" if profile.audio == "remove" else "audio"
    return (
        f"{profile.name:<10} {format_size(profile.max_bytes):>10}  ≤{profile.max_height}p "
        f"({profile.max_width}x{profile.max_height}), {length}, ≤{profile.fps:g} fps, "
        f"{profile.codec}, {audio}  {profile.description}" + (" [user]" if profile.origin == "user" else "")
    )

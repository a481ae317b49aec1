import pytest

from hybrid.units import (
    format_bitrate,
    format_duration,
    format_size,
    format_size_both,
    parse_bitrate,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50MB", 50_000_000),
        ("50 MB", 50_000_000),
        ("50M", 50_000_000),
        ("49.5mb", 49_500_000),
        ("50MiB", 52_428_800),
        ("50 mib", 52_428_800),
        ("800KB", 800_000),
        ("800kB", 800_000),
        ("1.5GB", 1_500_000_000),
        ("1048576", 1_048_576),
        ("1048576 bytes", 1_048_576),
        ("2GiB", 2 * 2**30),
        ("0.5 MB", 500_000),
        ("25,5MB", 25_500_000),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "fifty MB", "50 XB", "-5MB", "0MB", "50 MB MB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_parse_size_rounds_down_so_a_target_is_never_exceeded() -> None:
    assert parse_size("0.0000015MB") == 1
    assert parse_size("1.9999999KB") == 1999


@pytest.mark.parametrize(
    ("text", "expected"),
    [("128k", 128_000), ("128 kb/s", 128_000), ("2.5M", 2_500_000), ("96000", 96_000), ("64kbps", 64_000)],
)
def test_parse_bitrate(text: str, expected: int) -> None:
    assert parse_bitrate(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90", 90.0), ("90s", 90.0), ("1.5 min", 90.0), ("1:30", 90.0), ("0:01:30.5", 90.5), ("2h", 7200.0)],
)
def test_parse_duration(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


def test_formatting_names_units_plainly() -> None:
    assert format_size(25_000_000) == "25.00 MB"
    assert format_size(800_000) == "800.0 kB"
    assert format_size_both(25_000_000) == "25.00 MB (23.84 MiB)"
    assert format_bitrate(1_100_000) == "1.10 Mb/s"
    assert format_bitrate(96_000) == "96 kb/s"
    assert format_duration(130) == "2m10s"
    assert format_duration(8.3) == "8.3 s"

from __future__ import annotations

import re

import pytest

from imageprune.policy import quantities

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1073741824", 2**30),
        ("500M", 500_000_000),
        ("50Gi", 50 * 2**30),
        ("1.5G", 1_500_000_000),
        ("1.5Ki", 1536),
        (".5Mi", 2**19),
        ("2k", 2000),
        ("1T", 10**12),
        ("1Ti", 2**40),
        ("1E", 10**18),
        ("1Ei", 2**60),
        ("0.5", 1),  # fractions of a byte round up, as Kubernetes does
        ("1.0001k", 1001),
        ("123456789012345678901234567890", 123456789012345678901234567890),
    ],
)
def test_parses_kubernetes_quantities(text: str, expected: int) -> None:
    assert quantities.parse_bytes(text) == expected


def test_length_is_bounded_at_64_characters() -> None:
    assert quantities.parse_bytes("0" * 63 + "1") == 1
    whole = f"invalid byte quantity {'0' * 20!r}...: longer than 64 characters"
    with pytest.raises(ValueError, match=f"^{re.escape(whole)}$"):
        quantities.parse_bytes("0" * 64 + "1")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "must not be empty"),
        ("-1G", "must not be negative"),
        ("500m", "expected a number"),  # milli-bytes: a typo for M, not guessed at
        ("50GB", "expected a number"),
        ("1e9", "expected a number"),
        ("1 G", "expected a number"),
        ("G", "expected a number"),
        ("1.2.3", "expected a number"),
    ],
)
def test_rejects_with_a_message_listing_the_suffixes(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as caught:
        quantities.parse_bytes(text)
    if "expected" in complaint:
        assert "Ki, Mi, Gi" in str(caught.value)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (int(1.5 * 2**30), "1.5 GiB"),
        (2 * 2**20, "2 MiB"),
        (2**20 - 1, "1 MiB"),  # rounds up a unit rather than print "1024 KiB"
        (2**20 - 40, "1 MiB"),  # 1023.96 KiB: one decimal decides, not two
        (1378, "1.3 KiB"),  # 1.3457 KiB, rounded once
        (3 * 2**50, "3 PiB"),
        (1378 * 2**50, "1.3 EiB"),
        (3 * 2**60, "3 EiB"),
        (2**70, "1024 EiB"),
        (-1536, "-1.5 KiB"),
    ],
)
def test_formats_with_binary_units(count: int, text: str) -> None:
    assert quantities.format_bytes(count) == text

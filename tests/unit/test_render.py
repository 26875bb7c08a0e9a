from __future__ import annotations

import datetime
import io
import json

import pytest

from imageprune.cli import render
from imageprune.node import executor
from testkit import builders, pruneruns

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2025, 1, 2, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (None, "never"),
        (datetime.timedelta(microseconds=1420), "just now"),
        (datetime.timedelta(seconds=90.7), "90s ago"),
        (datetime.timedelta(days=7), "7d ago"),
    ],
)
def test_ages_read_naturally(age: datetime.timedelta | None, text: str) -> None:
    assert render.age_text(None if age is None else NOW - age, NOW) == text


def test_a_prune_report_prints_one_line_per_kind_of_error() -> None:
    outcome = executor.Outcome
    run = pruneruns.prune_run(
        [
            (outcome.REMOVED, ""),
            (outcome.UNKNOWN, "RuntimeUnavailable"),
            (outcome.NOT_ATTEMPTED, "RuntimeGone"),
            (outcome.NOT_ATTEMPTED, "RuntimeGone"),
            (outcome.NOT_ATTEMPTED, "RuntimeGone"),
        ],
        dry_run=False,
    )
    out = io.StringIO()
    render.prune_report(run, output="text", stream=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "removed: 000000000000 docker.io/library/i1:1"
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [
        "error: 3 images not attempted (RuntimeGone), e.g. 000000000000: d3",
        "error: 1 image outcome unknown (sent, no answer; may be gone) (RuntimeUnavailable), "
        "e.g. 000000000000: d2",
    ]
    assert lines[-1].startswith("Removed 1 images, 100 B (image filesystem: 200 B less used")
    assert "; 1 Unknown, 3 NotAttempted. Kept: 1 Excluded." in lines[-1]


def test_images_json_names_the_excludes_that_matched_nothing() -> None:
    plan = builders.make_plan(
        [builders.image(1, "docker.io/library/app:1")],
        selection=builders.selection(exclude=("docker.io/library/app:*", "quay.io/*")),
    )
    out = io.StringIO()
    render.images(plan, {}, output="json", stream=out)
    document = json.loads(out.getvalue())
    assert document["unmatchedExcludes"] == ["quay.io/*"]
    assert [i["reason"] for i in document["images"]] == ["Excluded"]

"""The console script's dispatch: `operator` and `agent` reach their own front ends,
everything else is the node CLI."""

from __future__ import annotations

import pytest

from imageprune import entry

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("server", ["operator", "agent"])
def test_servers_get_their_own_parser(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = entry.main([server, "--help"])
    except SystemExit as exit_:  # argparse's own exit, where a front end lets it through
        code = exit_.code  # type: ignore[assignment]
    assert code == 0
    assert f"usage: imageprune {server}" in capsys.readouterr().out


def test_everything_else_is_the_node_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        entry.main(["--help"])
    out = capsys.readouterr().out
    assert "usage: imageprune" in out
    assert "imageprune operator --help" in out
    assert "prune" in out

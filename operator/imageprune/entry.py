"""The `imageprune` console script: `imageprune operator ...` and `imageprune agent
...` start the cluster operator and the node agent; everything else is the node CLI.

The three front ends stay independent of each other (an import-linter contract), and
each is imported only when chosen: the CLI must not pay for kopf, nor the agent."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from imageprune.cli import main as cli

_SERVERS = {
    "operator": "imageprune.cluster.main",
    "agent": "imageprune.agent.main",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in _SERVERS:
        server = importlib.import_module(_SERVERS[args[0]])
        code: int = server.main(args[1:])
        return code
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())

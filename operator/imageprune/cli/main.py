"""`imageprune`: the node-local command line. Works on one node, without a cluster.

Exit codes (also in `imageprune --help`):
  0  success (including "nothing to remove")
  1  some removals failed; the rest went ahead
  2  bad usage: unknown flag, bad value or policy file; nothing was removed
  3  the container runtime could not be reached or failed; nothing was removed
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import imageprune
from imageprune.cli import commands, flags
from imageprune_cri import CriError

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3

_EPILOG = """\
exit codes:
  0  success (including nothing to remove)
  1  some removals failed; the others went ahead
  2  bad usage (flag, value or policy file); nothing was removed
  3  the container runtime could not be reached or failed; nothing was removed

Never removed, whatever the flags: images used by any container (running, created
or exited), pinned images, and the runtime's pod sandbox (pause) image.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imageprune",
        description=textwrap.fill(
            "Find and safely remove container images that no container uses, on this "
            "node, through the runtime's CRI socket (containerd, CRI-O, cri-dockerd)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"imageprune {imageprune.__version__}"
    )
    parser.add_argument(
        "--runtime-endpoint",
        metavar="ENDPOINT",
        help="CRI socket, e.g. unix:///run/containerd/containerd.sock "
        "(default: $CONTAINER_RUNTIME_ENDPOINT, else the first of the containerd, "
        "CRI-O and cri-dockerd sockets that exists)",
    )
    parser.add_argument(
        "--timeout",
        type=flags.positive_float,
        default=30.0,
        metavar="SECONDS",
        help="deadline for each call to the runtime (default: 30)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/imageprune"),
        metavar="DIR",
        help="where usage records (first seen / last used per image) are kept across "
        "runs (default: /var/lib/imageprune)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    images = sub.add_parser(
        "images",
        help="list images with their users and what a prune would do",
        description=textwrap.fill(
            "List every image with its tags, size, the containers using it, pinned "
            "state, last use, and the verdict (with its reason) under the given "
            "selection. Removes nothing."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=flags.SELECTION_EPILOG,
    )
    flags.add_selection(images)
    images.add_argument("-o", "--output", choices=["table", "json"], default="table")

    prune = sub.add_parser(
        "prune",
        help="remove the images the selection allows",
        description=textwrap.fill(
            "Remove images no container uses, as the selection allows, least recently "
            "used first. Each image is re-checked against a fresh container listing "
            "right before its removal."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=flags.SELECTION_EPILOG + "\n" + _EPILOG,
    )
    flags.add_selection(prune)
    prune.add_argument(
        "--dry-run", action="store_true", help="remove nothing; report what would go"
    )
    prune.add_argument(
        "--concurrency",
        type=flags.int_in_range(1, 1024),
        default=64,
        metavar="N",
        help="removals in flight at once (default: 64). containerd batches its garbage "
        "collection across concurrent removals, so more is faster; fewer leaves more "
        "room for kubelet's own calls on a busy node",
    )
    prune.add_argument("-o", "--output", choices=["text", "json"], default="text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Library warnings (e.g. unreadable usage records) reach the user as one line.
    logging.basicConfig(format="imageprune: warning: %(message)s", level=logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        selection = flags.selection_from_args(args)
    except flags.UsageError as err:
        parser.exit(EXIT_USAGE, f"imageprune {args.command}: error: {err}\n")
    try:
        run = commands.images if args.command == "images" else commands.prune
        failed = asyncio.run(run(args, selection))
    except CriError as err:
        print(f"imageprune: error: {err}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print("imageprune: interrupted", file=sys.stderr)
        return 130
    return EXIT_PARTIAL if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

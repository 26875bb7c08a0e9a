"""`imageprune`: the node-local command line. Works on one node, without a cluster.
The exit codes are in EXIT_CODES below (and `imageprune --help`).

This module imports only what is light at the top: the rest (gRPC, YAML: about half
a second) is imported after main() has its signal handlers in place, so a Ctrl-C
during start-up exits quietly instead of with a traceback from an import."""

from __future__ import annotations

import argparse
import asyncio
import enum
import logging
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import imageprune
from imageprune import streams
from imageprune.cli import interrupts

if TYPE_CHECKING:
    from imageprune.cli import flags


class Exit(enum.IntEnum):
    OK = 0
    PARTIAL = 1
    USAGE = 2
    RUNTIME = 3
    LOCKED = 4
    SIGHUP = 129
    SIGINT = 130
    SIGTERM = 143


# The one statement of what each exit code means: --help prints it; README.md and
# docs/policy.md point here (tests/unit/test_cli.py checks they agree).
EXIT_CODES: dict[Exit, str] = {
    Exit.OK: "success (including nothing to remove)",
    Exit.PARTIAL: "some removals failed, got no answer or were not sent; the report says which",
    Exit.USAGE: "bad usage (flag, value, endpoint, policy file, or a --state-dir that "
    "cannot hold the lock); nothing was removed",
    Exit.RUNTIME: "the container runtime could not be reached or failed before any "
    "removal; nothing was removed",
    Exit.LOCKED: "another prune on this node held the lock for --lock-timeout; nothing was removed",
    Exit.SIGHUP: "hung up (the terminal went away); a prune reports what it removed first",
    Exit.SIGINT: "interrupted (Ctrl-C); a prune reports what it removed first",
    Exit.SIGTERM: "terminated (SIGTERM); a prune reports what it removed first",
}

_EPILOG = (
    "exit codes:\n"
    + "".join(
        textwrap.fill(text, 79, initial_indent=f"  {code.value:<3}  ", subsequent_indent=" " * 7)
        + "\n"
        for code, text in EXIT_CODES.items()
    )
    + """
Never removed, whatever the flags: images used by any container (running, created
or exited), pinned images, and the runtime's pod sandbox (pause) image.

cluster components (see `imageprune operator --help`, `imageprune agent --help`):
  operator  turns ImagePrunePolicies into per-node tasks, rolls runs out in waves
  agent     one per node: runs its node's tasks with the same engine as `prune`
"""
)

_PRUNE_EPILOG = """\
one prune at a time: a prune that removes holds an exclusive lock on
<state-dir>/lock from its first look at the node to its last removal; a second one
waits up to --lock-timeout seconds, then exits 4 naming the holder's pid. --dry-run
and `images` take no lock (racing a prune, they can only show an image that is gone
a moment later).

limits: each runtime call has --timeout seconds. Once the runtime stops answering,
no more removals are sent (NotAttempted), and a removal that was sent but got no
answer is reported as Unknown unless the runtime, asked again, confirms it.
Ctrl-C, SIGTERM or SIGHUP during a prune sends no more removals, waits for those
in flight, prints the report and exits 130, 143 or 129; a second signal gives up
at once.
"""


def _add_global_flags(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The flags every command shares, given before or after the command (as kubectl
    allows). The copy on each command has no defaults, so that it never overwrites
    a value given before the command."""
    from imageprune.cli import flags  # noqa: PLC0415 - see the module docstring
    from imageprune_cri import client  # noqa: PLC0415

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--runtime-endpoint",
        metavar="ENDPOINT",
        default=default(None),
        help="CRI socket, e.g. unix:///run/containerd/containerd.sock "
        "(default: $CONTAINER_RUNTIME_ENDPOINT, else the first of the containerd, "
        "CRI-O and cri-dockerd sockets that exists)",
    )
    parser.add_argument(
        "--timeout",
        type=flags.positive_float,
        default=default(client.DEFAULT_TIMEOUT),
        metavar="SECONDS",
        help=f"deadline for each call to the runtime (default: {client.DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--state-dir",
        type=flags.path,
        default=default(Path("/var/lib/imageprune")),
        metavar="DIR",
        help="where usage records (first seen / last used per image) and the prune "
        "lock are kept across runs (default: /var/lib/imageprune)",
    )


def build_parser() -> argparse.ArgumentParser:
    from imageprune.cli import flags  # noqa: PLC0415 - see the module docstring
    from imageprune.node import statelock  # noqa: PLC0415

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
    _add_global_flags(parser, defaults=True)
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
    _add_global_flags(images, defaults=False)
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
        epilog=flags.SELECTION_EPILOG + "\n" + _PRUNE_EPILOG + "\n" + _EPILOG,
    )
    _add_global_flags(prune, defaults=False)
    flags.add_selection(prune)
    prune.add_argument(
        "--dry-run", action="store_true", help="remove nothing; report what would go"
    )
    prune.add_argument(
        "--concurrency",
        type=flags.int_in_range(1, 1024),
        metavar="N",
        help="removals in flight at once (default: 64, and all at once from 2,000 "
        "images to remove). containerd runs a garbage collection per batch of "
        "concurrent removals, and kubelet's container creation waits for it: measured "
        "on 500 images, 64 kept those waits short; on 2,000, all at once was faster and "
        "kinder to kubelet than any window",
    )
    prune.add_argument(
        "--lock-timeout",
        type=flags.non_negative_float,
        default=statelock.DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for another prune on this node to finish before giving "
        f"up with exit 4 (default: {statelock.DEFAULT_TIMEOUT:g}; 0: do not wait)",
    )
    prune.add_argument("-o", "--output", choices=["text", "json"], default="text")
    return parser


async def _run(
    args: argparse.Namespace, request: flags.Request, signals: interrupts.Interrupts
) -> int:
    from imageprune.cli import commands  # noqa: PLC0415 - see the module docstring

    signals.install()
    try:
        command = commands.images if args.command == "images" else commands.prune
        return await command(args, request, signals)
    finally:
        signals.uninstall()


def main(argv: Sequence[str] | None = None) -> int:
    # Library warnings (e.g. unreadable usage records) reach the user as one line.
    streams.guard_closed_descriptors()  # before anything opens a file
    logging.basicConfig(format="imageprune: warning: %(message)s", level=logging.WARNING)
    with interrupts.outside_the_loop():
        try:
            return _main(argv)
        except interrupts.Interrupted as stopped:
            print("imageprune: interrupted", file=sys.stderr)
            return stopped.exit_code
        finally:
            streams.flush()


def _main(argv: Sequence[str] | None) -> int:
    from imageprune.cli import flags  # noqa: PLC0415 - see the module docstring
    from imageprune.node import statelock  # noqa: PLC0415
    from imageprune_cri import CriError, EndpointInvalid  # noqa: PLC0415

    # Errors that are not the runtime's fault (the rest of CriError is).
    exit_of: dict[type[Exception], Exit] = {
        EndpointInvalid: Exit.USAGE,
        statelock.LockError: Exit.USAGE,  # the --state-dir cannot hold a lock
        statelock.LockHeld: Exit.LOCKED,
    }
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return Exit.USAGE
    try:
        # Outside the event loop, so a signal can interrupt reading a policy file.
        request = flags.request_from_args(args)
    except flags.UsageError as err:
        parser.exit(Exit.USAGE, f"imageprune {args.command}: error: {err}\n")
    signals = interrupts.Interrupts()
    try:
        failed = asyncio.run(_run(args, request, signals))
    except (CriError, statelock.LockError) as err:
        code = exit_of.get(type(err), Exit.RUNTIME)
        where = f" {args.command}" if code is Exit.USAGE else ""
        print(f"imageprune{where}: error: {err}", file=sys.stderr)
        return code
    except (asyncio.CancelledError, KeyboardInterrupt):
        # Cancelled by a signal before removals began, or a second signal after.
        print("imageprune: interrupted", file=sys.stderr)
        return signals.exit_code or Exit.SIGINT
    if signals.exit_code is not None:
        return signals.exit_code
    return Exit.PARTIAL if failed else Exit.OK


if __name__ == "__main__":
    sys.exit(main())

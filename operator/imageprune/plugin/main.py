"""`kubectl-imageprune`: arguments, the connection, and exit codes. kubectl runs it as
`kubectl imageprune ...` when it is on $PATH (every kubectl plugin is found so).

Exit codes: 0 done; 1 the run failed, paused or was ignored, or the spec is invalid;
2 bad arguments; 3 the cluster or the kubeconfig stopped us (the one-line error says
what to fix); 130 interrupted, 143 and 129 for SIGTERM and SIGHUP (the run goes on in the
cluster)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from imageprune import streams
from imageprune.api import names
from imageprune.kube.client import DEFAULT_TIMEOUT
from imageprune.plugin import commands, connect, output
from imageprune.policy import durations

CLUSTER_ERROR = 3  # argparse exits 2 itself; commands return 0 or 1; signals 128 + N

_EPILOG = """\
kubeconfig: as kubectl reads it: --kubeconfig, else $KUBECONFIG (several files merged
the way kubectl merges them), else ~/.kube/config, else (in a pod) the service account;
the current context unless --context names another.
Exec credential plugins (EKS, GKE, AKS) and proxies (proxy-url, HTTPS_PROXY, NO_PROXY) work.

exit codes: 0 done; 1 the run failed, paused or was ignored, or the spec is invalid;
2 bad arguments; 3 the cluster or kubeconfig stopped us; 130 interrupted (143 SIGTERM,
129 SIGHUP).
See docs/plugin.md."""


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kubeconfig", metavar="FILE", help="the kubeconfig to use")
    common.add_argument("--context", metavar="NAME", help="a context other than the current")
    common.add_argument(
        "--request-timeout",
        metavar="DURATION",
        type=_duration,
        default=DEFAULT_TIMEOUT,
        help=f"deadline of each API call, e.g. 10s (default: {DEFAULT_TIMEOUT:g}s)",
    )
    common.add_argument(
        "-o",
        "--output",
        choices=output.FORMATS,
        default="table",
        help="table for people (human units), json or yaml for programs",
    )
    top = argparse.ArgumentParser(
        prog="kubectl imageprune",
        description="See what imageprune did on each node, start a run, and explain why "
        "an image was or was not removed.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = sub.add_parser(
        "status",
        parents=[common],
        help="a policy's last run on each node, with totals",
        description="A table per node: when it last ran, why (trigger), what that run "
        "did (removed images and bytes; dry runs: what they would remove) and its errors, "
        "then the totals. Read from the policy's status and its ImagePruneTasks.",
    )
    status.add_argument("policy", metavar="POLICY", type=_name)
    run = sub.add_parser(
        "run",
        parents=[common],
        help="start a run now and follow it until it is done",
        description="Sets the policy's imageprune.io/run-now annotation to a new value "
        "(the operator starts one run per value), then follows the run node by node. "
        "Ctrl-C stops following; the run goes on. A suspended policy ignores the request "
        "(RunNowIgnored), and this says so. Exit 0 when every node succeeded.",
    )
    run.add_argument("policy", metavar="POLICY", type=_name)
    run.add_argument(
        "--timeout",
        metavar="DURATION",
        type=_duration,
        default=1800.0,
        help="stop following after this long, e.g. 10m (default: 30m)",
    )
    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="why an image was or was not removed on a node",
        description="Looks the image up (by tag, e.g. nginx:1.25, or ID, at least 12 hex "
        "digits) in the report the node's agent wrote for the policy's last run on that "
        "node. The report lists the images the run meant to remove (at most 50); an "
        "image kept by a rule is not listed, and the answer says so.",
    )
    explain.add_argument("policy", metavar="POLICY", type=_name)
    explain.add_argument("node", metavar="NODE", type=_name)
    explain.add_argument("image", metavar="IMAGE")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    streams.guard_closed_descriptors()  # before the kubeconfig is opened
    # The watch loop logs retries; a person sees them, a program still gets one document.
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupted)
    try:
        args = parser().parse_args(argv)
        return asyncio.run(_command(args))
    except connect.Failure as failure:
        print(f"error: {failure}", file=sys.stderr)
        return CLUSTER_ERROR
    finally:
        streams.flush(program="")  # what --help left buffered


def _interrupted(signum: int, frame: object) -> None:
    """Ctrl-C (SIGTERM, SIGHUP) leaves at once: we hold nothing that needs closing (a run
    we started goes on in the cluster), and waiting for connections to close could keep a
    person waiting. Exit 128 + the signal's number, as shells report it."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    with contextlib.suppress(OSError):  # a stderr nobody reads any more
        os.write(2, b"\nstopped; anything started goes on in the cluster\n")
    os._exit(128 + signum)


async def _command(args: argparse.Namespace) -> int:
    # A reader that left (`| head`) or an unwritable stdout does not stop a run from
    # being followed to its end, nor change the exit code (as the node CLI).
    out = streams.Stdout(program="")
    async with connect.connected(
        args.kubeconfig, args.context, request_timeout=args.request_timeout
    ) as client:
        if args.command == "status":
            return await commands.status(client, args.policy, fmt=args.output, out=out)
        if args.command == "run":
            return await commands.run(
                client,
                args.policy,
                fmt=args.output,
                give_up_after=args.timeout,
                out=out,
                err=sys.stderr,
            )
        return await commands.explain_image(
            client, args.policy, args.node, args.image, fmt=args.output, out=out
        )


def _name(text: str) -> str:
    problem = names.name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _duration(text: str) -> float:
    try:
        seconds = durations.parse_duration(text).total_seconds()
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return seconds


if __name__ == "__main__":
    sys.exit(main())

"""`imageprune agent`: the per-node agent's command line. Parses, checks and wires;
the work is in runner.py.

Exit codes: 0 after a clean stop (SIGTERM or SIGINT), 1 when the agent failed,
2 for bad usage (flags, kubeconfig, runtime endpoint); a message names the cause."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from imageprune import files
from imageprune.agent import health, logs, runner
from imageprune.agent.metrics import Metrics
from imageprune.api import names
from imageprune.kube import config as kube_config
from imageprune.kube.client import Client
from imageprune.kube.errors import ConfigError
from imageprune.node import usage
from imageprune.policy import durations
from imageprune_cri import CriClient, EndpointInvalid, EndpointNotFound, endpoint

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("imageprune.agent")


def _interval(text: str) -> float:
    try:
        seconds = durations.parse_duration(text).total_seconds()
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is under one second")
    return seconds


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535; 0 = off)")
    return int(text)


def _directory(text: str) -> Path:
    # Path("") is ".": an empty --state-dir would quietly mean the working directory.
    if not text:
        raise argparse.ArgumentTypeError("the path is empty")
    return Path(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 3600:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 3600 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imageprune agent",
        description="The per-node agent: runs this node's ImagePruneTasks, records image "
        "usage between runs, prunes on disk pressure, and writes each task's status.",
    )
    parser.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME"),
        help="this node's name, as in its Node object (default: $NODE_NAME)",
    )
    parser.add_argument(
        "--runtime-endpoint",
        metavar="ENDPOINT",
        help="CRI socket (default: $CONTAINER_RUNTIME_ENDPOINT, else the first of the "
        "containerd, CRI-O and cri-dockerd sockets that exists)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="deadline of each call to the runtime and the apiserver (default: 30)",
    )
    parser.add_argument(
        "--state-dir",
        type=_directory,
        default=Path("/var/lib/imageprune"),
        metavar="DIR",
        help="usage records and the run ledger (default: /var/lib/imageprune)",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="default: the pod's service account when in a cluster, else $KUBECONFIG,"
        " else ~/.kube/config",
    )
    parser.add_argument(
        "--context",
        metavar="NAME",
        help="the kubeconfig context to use (default: its current-context)",
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=8080,
        help="Prometheus /metrics (default 8080; 0 = off)",
    )
    parser.add_argument(
        "--health-port", type=_port, default=8081, help="/healthz (default 8081; 0 = off)"
    )
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    parser.add_argument(
        "--usage-interval",
        type=_interval,
        default=60.0,
        metavar="DURATION",
        help="how often image usage is recorded between runs (default: 1m)",
    )
    parser.add_argument(
        "--disk-check-interval",
        type=_interval,
        default=60.0,
        metavar="DURATION",
        help="how often the image filesystem is checked against diskUsage.highPercent "
        "(default: 1m)",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=_interval,
        default=20.0,
        metavar="DURATION",
        help="after SIGTERM, how long a run under way may go on before it is abandoned "
        "and reported Interrupted; keep it under the pod's terminationGracePeriodSeconds "
        "(default: 20s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.node_name:
        parser.exit(
            EXIT_USAGE, "imageprune agent: error: --node-name (or $NODE_NAME) is required\n"
        )
    if problem := names.name_problem(args.node_name):
        parser.exit(
            EXIT_USAGE, f"imageprune agent: error: --node-name (or $NODE_NAME): {problem}\n"
        )
    if args.metrics_port and args.metrics_port == args.health_port:
        parser.exit(
            EXIT_USAGE, "imageprune agent: error: --metrics-port and --health-port must differ\n"
        )
    logs.configure(fmt=args.log_format, node=args.node_name)
    try:
        # Checked now: else every run would fail on the lock, each reported NodeBusy.
        files.make_directory(args.state_dir, mode=usage.DIRECTORY_MODE)
    except OSError as err:
        # err.filename is what stands in the way: the directory, or one of its parents.
        log.error("--state-dir %s: %s: %s", args.state_dir, err.filename, err.strerror)
        return EXIT_USAGE
    try:
        kube = Client(kube_config.load(args.kubeconfig, context=args.context), timeout=args.timeout)
        runtime = endpoint.resolve(args.runtime_endpoint)
    except (ConfigError, EndpointInvalid, EndpointNotFound) as err:
        log.error("%s", err)
        return EXIT_USAGE
    settings = runner.Settings(
        node_name=args.node_name,
        state_dir=args.state_dir,
        usage_interval=args.usage_interval,
        disk_check_interval=args.disk_check_interval,
        shutdown_grace=args.shutdown_grace,
        runtime_timeout=args.timeout,
    )
    return asyncio.run(
        _serve(
            settings,
            kube=kube,
            runtime=runtime,
            metrics_port=args.metrics_port,
            health_port=args.health_port,
        )
    )


async def _serve(
    settings: runner.Settings,
    *,
    kube: Client,
    runtime: endpoint.Endpoint,
    metrics_port: int,
    health_port: int,
) -> int:
    try:
        await kube.check()  # an exec credential plugin that fails says so now
    except ConfigError as err:
        log.error("%s", err)
        return EXIT_USAGE
    metrics = Metrics()
    async with CriClient(
        runtime.target, timeout=settings.runtime_timeout, origin=runtime.origin
    ) as cri:
        agent = runner.Agent(settings, kube=kube, cri=cri, metrics=metrics)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, agent.stop, signal.Signals(signum).name)
        server: asyncio.Server | None = None
        try:
            if metrics_port:
                metrics.serve(metrics_port)
            if health_port:
                server = await health.serve(health_port, agent.health)
        except OSError as err:
            log.error(
                "cannot listen (--metrics-port %d, --health-port %d): %s",
                metrics_port,
                health_port,
                err,
            )
            return EXIT_USAGE
        log.info(
            "agent for node %s: runtime %s, apiserver %s, state %s",
            settings.node_name,
            runtime.describe(),
            kube.server,
            settings.state_dir,
        )
        try:
            await agent.run()
        except Exception:
            log.exception("the agent failed")
            return EXIT_FAILED
        finally:
            if server is not None:
                server.close()
            await kube.close()
    log.info("stopped")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

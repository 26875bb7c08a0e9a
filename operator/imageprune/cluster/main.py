"""`imageprune operator`: flags, login, metrics, then kopf runs the handlers until SIGTERM.

Only parsing and wiring here (as kopf's own cli.py): the handlers are in handlers.py."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import kopf
import yaml

from imageprune import files
from imageprune.cluster import handlers, metrics

EXIT_USAGE = 2
_PROG = "imageprune operator"
# Kubeconfigs with a few dozen clusters stay far below this; /dev/zero does not.
_KUBECONFIG_LIMIT = 4 * 1024 * 1024


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535 (got {text!r})")
    return port


def _interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0.1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"must be 0.1 to 3600 seconds (got {text!r})")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Turn ImagePrunePolicies into ImagePruneTasks for the node agents,"
        " roll runs out in waves and report results in the policy status."
        " Cluster-scoped: it watches policies, tasks and nodes in the whole cluster."
        " Run one replica (Deployment strategy Recreate).",
    )
    parser.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: the in-cluster service account, then $KUBECONFIG)",
    )
    parser.add_argument(
        "--metrics-port", type=_port, default=0, help="serve Prometheus /metrics here (0: off)"
    )
    parser.add_argument(
        "--health-port",
        type=_port,
        default=0,
        help="serve the liveness probe on http://:PORT/healthz (0: off)",
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--interval",
        type=_interval,
        default=handlers.Config.interval,
        help="seconds between two passes over each policy (default %(default)s)",
    )
    return parser


class _BadKubeconfig(Exception):
    pass


def _check_kubeconfig(path: str) -> None:
    """Fail early with the reason instead of kopf retrying a broken login forever."""
    try:
        # kopf reads whatever the path names: /dev/zero or a FIFO would hang it.
        files.read_regular_file(path, limit=_KUBECONFIG_LIMIT)
        info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    except FileNotFoundError:
        raise _BadKubeconfig(f"--kubeconfig {path}: no such file") from None
    except (OSError, yaml.YAMLError, files.FileRejected) as error:
        reason = " ".join(str(error).split())  # YAML errors span lines
        raise _BadKubeconfig(f"--kubeconfig {path}: cannot read it: {reason}") from None
    except (KeyError, TypeError, AttributeError, kopf.LoginError) as error:
        raise _BadKubeconfig(
            f"--kubeconfig {path}: not a usable kubeconfig (current context, its cluster and"
            f" user are needed): {error}"
        ) from None
    if info is None or not info.server:
        raise _BadKubeconfig(f"--kubeconfig {path}: the current context names no server")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.kubeconfig is not None:
        os.environ["KUBECONFIG"] = args.kubeconfig  # read by kopf's kubeconfig login
        try:
            _check_kubeconfig(args.kubeconfig)
        except _BadKubeconfig as error:
            print(f"{_PROG}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
    kopf.configure(
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    )
    logging.getLogger("kopf.objects").addFilter(_quiet_successes)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, handlers.Config(interval=args.interval))
    _register_login(registry, explicit=args.kubeconfig is not None)
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    if args.metrics_port:
        try:
            metrics.serve(args.metrics_port)
        except OSError as error:
            print(f"{_PROG}: error: --metrics-port {args.metrics_port}: {error}", file=sys.stderr)
            return EXIT_USAGE
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    logging.getLogger(__name__).info("imageprune operator starting")
    kopf.run(
        registry=registry,
        settings=settings,
        standalone=True,
        clusterwide=True,
        liveness_endpoint=liveness,
    )
    return 0


_ROUTINE = re.compile(r"(Timer|Handler) '[^']*' succeeded\.")


def _quiet_successes(record: logging.LogRecord) -> bool:
    """Drop kopf's line per successful handler call: every policy's timer would log one
    each --interval. Failures, and what our passes log, stay."""
    return not _ROUTINE.fullmatch(record.getMessage())


def _register_login(registry: kopf.OperatorRegistry, *, explicit: bool) -> None:
    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """--kubeconfig when given; else the in-cluster service account, then $KUBECONFIG."""
        if not explicit:
            in_cluster = kopf.login_with_service_account(**kwargs)
            if in_cluster is not None:
                return in_cluster
        return kopf.login_with_kubeconfig(**kwargs)


if __name__ == "__main__":
    sys.exit(main())

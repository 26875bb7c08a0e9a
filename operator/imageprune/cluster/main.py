"""`imageprune operator`: flags, login, metrics, then kopf runs the handlers until SIGTERM.

Only parsing and wiring here (as kopf's own cli.py): the handlers are in handlers.py."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kopf

from imageprune.api import names
from imageprune.cluster import handlers, leader, metrics
from imageprune.kube import auth
from imageprune.kube import config as kube_config
from imageprune.kube.errors import ConfigError

EXIT_FAILED, EXIT_USAGE = 1, 2
_PROG = "imageprune operator"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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


def _object_name(text: str) -> str:
    if problem := names.name_problem(text):
        raise argparse.ArgumentTypeError(problem)
    return text


def _namespace(text: str) -> str:
    if problem := names.name_problem(text, namespace=True):
        raise argparse.ArgumentTypeError(problem)
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Turn ImagePrunePolicies into ImagePruneTasks for the node agents,"
        " roll runs out in waves and report results in the policy status."
        " Cluster-scoped: it watches policies, tasks and nodes in the whole cluster."
        " Replicas elect a leader through a Lease; the others stand by.",
    )
    parser.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: the in-cluster service account, then $KUBECONFIG,"
        " then ~/.kube/config)",
    )
    parser.add_argument(
        "--context", help="the kubeconfig context to use (default: its current-context)"
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
    parser.add_argument(
        "--agent-namespace",
        type=_namespace,
        metavar="NAMESPACE",
        help="the namespace of the agent DaemonSet's pods: a matched node with no Ready "
        "agent pod is skipped (AgentNotRunning) instead of stalling a run. Needs "
        "--agent-selector; the Helm chart sets both (default: off, every node is "
        "assumed to have an agent)",
    )
    parser.add_argument(
        "--agent-selector",
        type=_labels,
        metavar="KEY=VALUE,...",
        help="the labels of the agent pods, e.g. app.kubernetes.io/component=agent",
    )
    election = parser.add_argument_group("leader election (a coordination.k8s.io Lease)")
    election.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="take the Lease before acting, stand by while another replica holds it "
        "(default: on; --no-leader-election for a single operator run by hand)",
    )
    election.add_argument(
        "--lease-namespace",
        type=_namespace,
        metavar="NAMESPACE",
        help="the Lease's namespace (default: the pod's own, else default)",
    )
    election.add_argument(
        "--lease-name",
        type=_object_name,
        default=leader.Settings.name,
        help="(default %(default)s)",
    )
    election.add_argument(
        "--lease-duration",
        type=_interval,
        default=leader.Settings.duration,
        help="seconds a standby waits for a silent leader before taking over (default %(default)s)",
    )
    election.add_argument(
        "--renew-deadline",
        type=_interval,
        default=leader.Settings.renew_deadline,
        help="seconds a leader may fail to renew before it exits (default %(default)s)",
    )
    election.add_argument(
        "--retry-period",
        type=_interval,
        default=leader.Settings.retry,
        help="seconds between two tries to take or renew (default %(default)s)",
    )
    return parser


def _own_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _labels(text: str) -> dict[str, str]:
    """An equality label selector: 'a=b,c=d'."""
    labels = {}
    for part in text.split(","):
        key, equals, value = part.partition("=")
        if not equals or not key.strip():
            raise argparse.ArgumentTypeError(f"{part!r} is not KEY=VALUE (got {text!r})")
        if problem := names.label_problem(key.strip(), value.strip()):
            raise argparse.ArgumentTypeError(problem)
        labels[key.strip()] = value.strip()
    return labels


def _parse(
    argv: Sequence[str] | None,
) -> tuple[argparse.Namespace, leader.Settings | None] | int:
    """The arguments and the lease settings (None: no election), or the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if (args.agent_namespace is None) != (args.agent_selector is None):
            parser.error("--agent-namespace and --agent-selector go together")
        if not args.leader_election:
            return args, None
        if not args.lease_duration > args.renew_deadline > args.retry_period:
            parser.error(
                "--lease-duration must exceed --renew-deadline, which must exceed --retry-period"
            )
        return args, leader.Settings(
            namespace=args.lease_namespace or _own_namespace(),
            name=args.lease_name,
            duration=max(1, round(args.lease_duration)),
            renew_deadline=args.renew_deadline,
            retry=args.retry_period,
        )
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    parsed = _parse(argv)
    if isinstance(parsed, int):
        return parsed
    args, lease = parsed
    try:
        target = kube_config.load(args.kubeconfig, context=args.context)
        # Fail now with the reason, rather than kopf retrying a broken login for ever.
        asyncio.run(target.credential.identity())
    except ConfigError as error:
        print(f"{_PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    kopf.configure(
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    )
    logging.getLogger("kopf.objects").addFilter(_quiet_successes)
    return _operate(args, target, lease)


def _operate(
    args: argparse.Namespace, target: kube_config.Target, lease: leader.Settings | None
) -> int:
    """Handlers, metrics, the lead (if elected), then kopf until it stops."""
    registry = kopf.OperatorRegistry()
    agents = (
        handlers.AgentSelector(args.agent_namespace, args.agent_selector)
        if args.agent_namespace is not None
        else None
    )
    handlers.register(
        registry, handlers.Config(interval=args.interval, target=target, agents=agents)
    )
    failures: list[ConfigError] = []
    stop = threading.Event()
    _register_login(registry, target, failures, stop)
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    if problem := _cannot_listen(args, lease):
        print(f"{_PROG}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    leadership = None
    if lease is not None:
        # Its own login: the elector runs on a thread of its own, beside kopf's loop.
        leadership = leader.Leadership(
            kube_config.load(args.kubeconfig, context=args.context), lease
        )
        try:
            if not _stand_by(leadership, args.health_port):
                if leadership.failure is None:
                    return 0  # stopped while standing by
                print(f"{_PROG}: error: {leadership.failure}", file=sys.stderr)
                return EXIT_FAILED
        except OSError as error:
            print(f"{_PROG}: error: --health-port {args.health_port}: {error}", file=sys.stderr)
            return EXIT_USAGE
        # Until kopf installs its own handlers (its start can take long, retrying an
        # apiserver that is not ready), a SIGTERM releases the lease and leaves at once:
        # the standby takes over without waiting for the lease to expire.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, functools.partial(_leave_early, leadership))
    liveness = f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
    logging.getLogger(__name__).info("imageprune operator starting")
    try:
        kopf.run(
            registry=registry,
            settings=settings,
            standalone=True,
            clusterwide=True,
            liveness_endpoint=liveness,
            stop_flag=stop,
        )
    except Exception:
        if not failures:
            raise
        # kopf's failed login activity (or, without credentials, its API calls):
        # the cause is the plugin's failure, said below.
    finally:
        if leadership is not None:
            leadership.resign()  # kopf has stopped: the standby may take over now
    if failures:
        print(f"{_PROG}: error: cannot log in: {failures[-1]}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _cannot_listen(args: argparse.Namespace, lease: leader.Settings | None) -> str | None:
    """Why the operator cannot listen where asked, None when it can. The metrics server
    starts here. /healthz is tried now when there is no election (whose standby serves
    it, or fails to): kopf binds it later, and logs a traceback when it cannot."""
    try:
        if args.metrics_port:
            metrics.serve(args.metrics_port)
    except OSError as error:
        return f"--metrics-port {args.metrics_port}: {error}"
    try:
        with leader.healthy(args.health_port if lease is None else 0):
            pass
    except OSError as error:
        return f"--health-port {args.health_port}: {error}"
    return None


def _leave_early(leadership: leader.Leadership, signum: int, _frame: object) -> None:
    logging.getLogger(__name__).info("%s before the start: leaving", signal.Signals(signum).name)
    leadership.resign()
    logging.shutdown()
    os._exit(0)


def _stand_by(leadership: leader.Leadership, health_port: int) -> bool:
    """Wait for the lead, /healthz answering meanwhile; SIGTERM or SIGINT ends the wait
    (False). kopf installs its own handlers once it runs."""
    handlers_before = {
        sig: signal.signal(sig, lambda *_: leadership.stop())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        with leader.healthy(health_port):
            return leadership.acquire()
    finally:
        for sig, handler in handlers_before.items():
            signal.signal(sig, handler)


_ROUTINE = re.compile(r"(Timer|Handler) '[^']*' succeeded\.")


def _quiet_successes(record: logging.LogRecord) -> bool:
    """Drop kopf's line per successful handler call: every policy's timer would log one
    each --interval. Failures, and what our passes log, stay."""
    return not _ROUTINE.fullmatch(record.getMessage())


def _register_login(
    registry: kopf.OperatorRegistry,
    target: kube_config.Target,
    failures: list[ConfigError],
    stop: threading.Event,
) -> None:
    handed: list[auth.Identity] = []

    @kopf.on.login(id="login", registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        """Our credentials, as the agent uses them (kopf's own login skips exec plugins).
        kopf logs in again when the last ones are rejected or expire: renew those.
        When that fails, stop: kopf alone would wait for credentials for ever."""
        try:
            identity = await target.credential.identity(rejected=handed[-1] if handed else None)
        except ConfigError as error:
            failures.append(error)
            stop.set()
            raise kopf.PermanentError(str(error)) from None
        handed.append(identity)
        return connection_info(target, identity)

    @kopf.on.cleanup(id="release-stop-flag", registry=registry)
    async def release(**_: Any) -> None:
        """kopf waits for a threading.Event in an executor thread: left unset, that thread
        outlives the operator, and the event loop's close waits for it for ever (SIGTERM
        would end in SIGKILL)."""
        stop.set()


def connection_info(target: kube_config.Target, identity: auth.Identity) -> kopf.ConnectionInfo:
    cluster, user = target.cluster, target.user
    cert: dict[str, str | bytes | None] = {
        "certificate_path": user.client_cert,
        "certificate_data": user.client_cert_data,
        "private_key_path": user.client_key,
        "private_key_data": user.client_key_data,
    }
    if identity.cert_pem:  # an exec plugin's certificate replaces the kubeconfig's
        cert = {"certificate_data": identity.cert_pem, "private_key_data": identity.key_pem}
    return kopf.ConnectionInfo(
        server=target.server,
        ca_path=cluster.certificate_auth,
        ca_data=cluster.certificate_auth_data,
        insecure=cluster.insecure,
        scheme="Bearer" if identity.token else None,
        token=identity.token,
        default_namespace="default",
        expiration=identity.expires,
        proxy_url=target.proxy,
        **cert,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    sys.exit(main())

"""`pxsec`: the command line. Every subcommand turns user errors into one line on stderr and a
non-zero exit — never a traceback.

    pxsec validate -f FILE           check PxSecurity documents offline (same rules as the CRD)
    pxsec plan -f FILE --storagecluster SC.yaml   what the operator would change, and whether it waits
    pxsec operator [--namespace NS]  run the operator (kopf)
    pxsec dev up                     local control plane + operator + a sample, for a first look
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from pxsec.cli.parse import OneLineParser
from pxsec.controller.leader import LeaseConfig, default_identity, default_namespace


def _operator(args: argparse.Namespace) -> int:
    import kopf

    import pxsec.controller.handlers  # registers the handlers

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf's per-object debug chatter stays off unless asked for.
    logging.getLogger("kopf").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    pxsec.controller.handlers.configure(pxsec.controller.handlers.Options(
        workers=args.workers, namespaces=_namespaces(args), metrics_address=args.metrics_bind_address,
        lease=_lease_config(args)))
    kopf.run(
        standalone=True,  # no kopf peering: replicas elect a leader with a Lease (--leader-elect)
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        liveness_endpoint=args.liveness,
    )
    return 1 if pxsec.controller.handlers.lost_leadership else 0


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{value} is outside 1-64")
    return value


class UsageError(Exception):
    """A command line that cannot work: exit 2, like argparse's own usage errors."""


def _namespace(text: str) -> str:
    """Names only: Secrets and ConfigMaps are watched per namespace by name (controller/kube/watches.py)."""
    if not text or any(c in text for c in "*?[]!"):
        raise argparse.ArgumentTypeError(f"{text!r}: give namespace names, not patterns")
    return text


def _namespaces(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(args.namespace or ())


def _lease_config(args: argparse.Namespace) -> LeaseConfig | None:
    if not args.leader_elect:
        return None
    namespace = args.leader_election_namespace or default_namespace()
    if not namespace:
        raise UsageError("--leader-elect needs --leader-election-namespace (or $POD_NAMESPACE): "
                         "where the Lease lives")
    return LeaseConfig(namespace=namespace, name=args.leader_election_id, identity=default_identity(),
                       lease_duration=args.leader_election_lease_duration,
                       renew_deadline=args.leader_election_renew_deadline,
                       retry_period=args.leader_election_retry_period)


def _validate(args: argparse.Namespace) -> int:
    from pxsec.cli.validate import run_validate

    return run_validate(args.file)


def _dev(args: argparse.Namespace) -> int:
    from pxsec.devcluster.demo import run_demo

    return run_demo(example=args.example, keep=not args.once)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pxsec", description="PX-Security bootstrap for Portworx")
    sub = parser.add_subparsers(dest="command", required=True)

    op = sub.add_parser("operator", help="run the operator")
    op.add_argument("--namespace", "-n", action="append", type=_namespace,
                    help="watch only this namespace (repeatable)")
    op.add_argument("--workers", type=_workers, default=4, metavar="N",
                    help="reconciles run at once (default 4; 1-64): each is a thread waiting on the API server "
                         "most of the time, and RSA key generation runs there, never on the event loop")
    op.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    op.add_argument("--verbose", "-v", action="store_true")
    op.add_argument("--metrics-bind-address", default=None, metavar="HOST:PORT",
                    help="serve Prometheus metrics on /metrics, e.g. 0.0.0.0:8081 (default: off)")
    op.add_argument("--leader-elect", action="store_true",
                    help="several replicas: only the holder of a Lease reconciles")
    op.add_argument("--leader-election-namespace", default=None,
                    help="namespace of the Lease (default: $POD_NAMESPACE, else the pod's own namespace)")
    op.add_argument("--leader-election-id", default="px-security-operator", help="name of the Lease")
    op.add_argument("--leader-election-lease-duration", type=int, default=15, metavar="SECONDS",
                    help="a candidate takes over a Lease not renewed for this long (default 15)")
    op.add_argument("--leader-election-renew-deadline", type=float, default=10.0, metavar="SECONDS",
                    help="the leader stops when it could not renew for this long (default 10)")
    op.add_argument("--leader-election-retry-period", type=float, default=2.0, metavar="SECONDS",
                    help="how often candidates try and the leader renews (default 2)")
    op.set_defaults(func=_operator)

    val = sub.add_parser("validate", help="validate PxSecurity documents offline")
    val.add_argument("-f", "--file", required=True, help="YAML file with one or more documents, or - for stdin")
    val.set_defaults(func=_validate)

    from pxsec.cli import plan as cli_plan
    from pxsec.cli import render as cli_render
    from pxsec.cli import token as cli_token

    cli_render.register(sub)
    cli_plan.register(sub)
    cli_token.register(sub)

    dev = sub.add_parser("dev", help="a local control plane with the operator and a sample resource")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    up = dev_sub.add_parser("up", help="start everything, apply a sample, wait until Ready")
    up.add_argument("--example", default="self-signed-rsa-ecdsa.yaml", help="file in examples/ to apply")
    up.add_argument("--once", action="store_true", help="stop everything once the sample is Ready")
    up.set_defaults(func=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head -1`): nothing to say, as with any Unix tool; stdout goes to /dev/null
        # so that Python's own flush at exit does not raise it again. 141 = 128 + SIGPIPE, as a shell reports.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except UsageError as exc:
        print(f"pxsec: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the last line of defence: one line, no traceback, never empty
        if isinstance(exc, OSError):  # its str() carries the file name, which may be a misplaced secret
            said = exc.strerror or type(exc).__name__
        else:
            said = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"pxsec: error: {said}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

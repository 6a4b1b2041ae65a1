"""`pxsec`: the command line. Every subcommand turns user errors into one line on stderr and a
non-zero exit — never a traceback.

    pxsec validate -f FILE           check PxSecurity documents offline (same rules as the CRD)
    pxsec operator [--namespace NS]  run the operator (kopf)
    pxsec dev up                     local control plane + operator + a sample, for a first look
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pxsec.cliparse import OneLineParser


def _operator(args: argparse.Namespace) -> int:
    import kopf

    import pxsec.handlers  # noqa: F401  (registers the handlers)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf's per-object debug chatter stays off unless asked for.
    logging.getLogger("kopf").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        liveness_endpoint=args.liveness,
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    from pxsec.cli_validate import run_validate

    return run_validate(args.file)


def _dev(args: argparse.Namespace) -> int:
    from pxsec.devcluster.demo import run_demo

    return run_demo(example=args.example, keep=not args.once)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="pxsec", description="PX-Security bootstrap for Portworx")
    sub = parser.add_subparsers(dest="command", required=True)

    op = sub.add_parser("operator", help="run the operator")
    op.add_argument("--namespace", "-n", action="append", help="watch only this namespace (repeatable)")
    op.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    op.add_argument("--verbose", "-v", action="store_true")
    op.set_defaults(func=_operator)

    val = sub.add_parser("validate", help="validate PxSecurity documents offline")
    val.add_argument("-f", "--file", required=True, help="YAML file with one or more documents, or - for stdin")
    val.set_defaults(func=_validate)

    from pxsec import cli_render, cli_token

    cli_render.register(sub)
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
    except Exception as exc:  # the last line of defence: one line, no traceback
        print(f"pxsec: error: {exc}".splitlines()[0], file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""The ``symbackprop`` command: a thin layer over the public API.

Library errors become one line, ``error: …``, and exit code 2, in one place
(:func:`main`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import __version__
from .derivation import derive
from .errors import SymbackpropError
from .spec import load_spec

__all__ = ["main"]

_EXAMPLES = """\
examples:
  symbackprop derive examples/seed.toml     the seed's one-weight network, derived
"""


def _derive(args: argparse.Namespace) -> int:
    derivation = derive(load_spec(args.spec))
    sys.stdout.write(derivation.text())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symbackprop",
        description="Backpropagation in matrix form: derive, typeset, code and check every layer's gradient.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"symbackprop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    derive_parser = commands.add_parser(
        "derive",
        help="derive every layer's gradient from a spec file",
        description="Print the forward pass, the chain-rule steps, the deltas and every gradient.",
        epilog="example:\n  symbackprop derive examples/seed.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    derive_parser.add_argument("spec", help="a TOML spec file describing the network")
    derive_parser.set_defaults(run=_derive)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except SymbackpropError as err:
        message = str(err).splitlines()
        print(f"error: {message[0]}", file=sys.stderr)
        for line in message[1:]:
            print(f"       {line}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head
        return 0

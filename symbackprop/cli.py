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
  symbackprop derive examples/seed.toml --numpy seed.py    ... and its NumPy update functions
  symbackprop derive examples/seed.toml --latex seed.tex --standalone    ... typeset, ready for pdflatex
  symbackprop train examples/seed.toml      the seed's twenty steps of gradient descent
"""


def _derive(args: argparse.Namespace) -> int:
    derivation = derive(load_spec(args.spec))
    code = derivation.numpy_source() if args.numpy else None  # generated before anything is written
    if not _typeset(derivation, args) and code is None:
        sys.stdout.write(derivation.text())
    if code is not None:
        from .rendering import write_output

        write_output(code, args.numpy)
    return 0


def _train(args: argparse.Namespace) -> int:
    from .training import train_spec

    train_spec(args.spec, plot=args.plot, steps=args.steps, lr=args.lr, out=sys.stdout)
    return 0


def _check(args: argparse.Namespace) -> int:
    from .checking import check

    result = check(load_spec(args.spec), args.param, args.formula)
    print(result.message)
    return 0 if result.ok else 1


def _typeset(derivation, args: argparse.Namespace) -> bool:
    """Write the ``--latex`` and ``--markdown`` renderings; False when neither was asked for."""
    from .errors import NotationError
    from .rendering import parse_notation, write_output

    if args.standalone and not args.latex:
        raise NotationError("--standalone needs --latex FILE")
    notation = parse_notation(args.notation)
    outputs = []
    if args.latex:
        outputs.append((args.latex, derivation.latex(args.standalone, **notation)))
    if args.markdown:
        outputs.append((args.markdown, derivation.markdown(**notation)))
    if args.notation and not outputs:
        raise NotationError("--notation needs --latex FILE or --markdown FILE")
    for path, text in outputs:  # everything rendered before anything is written
        write_output(text, path)
    return bool(outputs)


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
    derive_parser.add_argument("--latex", metavar="FILE", help="write the derivation as LaTeX to FILE ('-': stdout)")
    derive_parser.add_argument("--standalone", action="store_true",
                               help="with --latex: a whole document that compiles with pdflatex")
    derive_parser.add_argument("--markdown", metavar="FILE",
                               help="write the derivation as Markdown with $$ blocks to FILE ('-': stdout)")
    derive_parser.add_argument("--notation", metavar="KEY=VALUE", action="append", default=[],
                               help="notation for --latex/--markdown: learning_rate=R, symbols.W1=w, bold=true, "
                                    "scalar=true, inline=true, line_width=40 (repeatable)")
    derive_parser.add_argument("--numpy", metavar="FILE",
                               help="write a standalone NumPy module (forward, cost, gradients, step) to FILE ('-': stdout)")
    derive_parser.set_defaults(run=_derive)
    train_parser = commands.add_parser(
        "train",
        help="run gradient descent with the generated step, as the spec's [train] table says",
        description="Train with the generated NumPy step; print the cost and every 1×1 parameter after each step.",
        epilog="example:\n  symbackprop train examples/seed.toml --plot seed.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train_parser.add_argument("spec", help="a TOML spec file with a [train] table")
    train_parser.add_argument("--plot", metavar="FILE.png", help="draw the cost and the parameters over the steps "
                                                                 "(needs matplotlib: pip install 'symbackprop[plot]')")
    train_parser.add_argument("--steps", type=int, help="number of steps (overrides [train].steps)")
    train_parser.add_argument("--lr", type=float, help="learning rate (overrides [train].lr)")
    train_parser.set_defaults(run=_train)
    check_parser = commands.add_parser(
        "check",
        help="check a hand-derived gradient, delta or update rule: exit 0 right, 1 wrong, 2 bad input",
        description="Decide whether FORMULA is the derivative of the cost with respect to PARAM\n"
                    "(or the delta PARAM, or PARAM's update when FORMULA names a learning rate R,\n"
                    "eta, lr or alpha); when it is not, show where the two differ and which usual\n"
                    "slip explains it. The language is described in docs/formula-language.md.",
        epilog="examples:\n"
               "  symbackprop check examples/seed.toml W1 '2 * x * (W1 * x - y)'\n"
               "  symbackprop check examples/seed.toml W1 'W1 - R * 2 * x * (W1 * x - y)'\n"
               "  symbackprop check examples/seed.toml W1 -- '-2 * x * (y - W1 * x)'   (-- before a leading -)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check_parser.add_argument("spec", help="a TOML spec file describing the network")
    check_parser.add_argument("param", help="the parameter (W1, b2, W^{(1)}) or delta (delta1) the formula is for")
    check_parser.add_argument("formula", help="the formula, plain (W2.T @ delta2) or LaTeX (W^{(2)\\top} \\delta^{(2)})")
    check_parser.set_defaults(run=_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a checked formula is wrong, 2 bad input)."""
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

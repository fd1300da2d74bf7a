"""The ``symbackprop`` command: a thin layer over the public API.

Five subcommands — ``derive``, ``train``, ``eval``, ``check``, ``grad`` — each printing readable
text, or with ``--format json`` one JSON document for scripts (schemas in
``docs/cli.md``).  Every error, a library error or a usage error, is reported
in one place (:func:`main`) as one line on standard error,
``error: <message> (hint: <likely fix>)`` (in JSON mode a one-line JSON object),
with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import textwrap
from typing import Any, NoReturn, Sequence

import numpy as np

from . import __version__
from .derive import derive
from .errors import FormulaSyntaxError, NotationError, SymbackpropError, did_you_mean
from .model.network import Network
from .outputs.files import check_path, write_outputs, write_stdout
from .spec import load_spec, read_spec

__all__ = ["main"]

_EXAMPLES = """\
examples:
  symbackprop derive examples/seed.toml
      the seed's one-weight network: forward pass, chain-rule steps, gradients
  symbackprop derive examples/nielsen.toml --format json
      the same as one JSON document, for scripts
  symbackprop derive examples/seed.toml --latex seed.tex --standalone
      typeset, ready for pdflatex (--markdown FILE, --numpy FILE likewise)
  symbackprop train examples/seed.toml
      the seed's twenty steps of gradient descent: w = -8.5948, ..., 8.7893
  symbackprop check examples/seed.toml W1 '2 * x * (W1 * x - y)'
      is this hand-derived formula dC/dW1? (exit 0 yes, 1 no)
  symbackprop grad 'log(det(X)) + trace(A @ X)' X --shapes X=n,n A=n,n
      the gradient of one matrix expression: X⁻ᵀ + Aᵀ

exit status: 0 done, 1 'check' found the formula wrong, 2 bad input or output.
Errors are one line on standard error: error: MESSAGE (hint: LIKELY FIX).
'symbackprop COMMAND --help' describes a command; docs/cli.md is the manual.
"""

_DERIVE_EXAMPLES = """\
examples:
  symbackprop derive examples/seed.toml
  symbackprop derive examples/softmax_classifier.toml --format json
  symbackprop derive examples/seed.toml --latex seed.tex --standalone
  symbackprop derive examples/seed.toml --markdown - --notation bold=true
  symbackprop derive examples/nielsen.toml --numpy nielsen_step.py
  symbackprop derive examples/nielsen.toml --code torch nielsen_torch.py
  symbackprop derive examples/seed.toml --code octave seed_step.m
  symbackprop derive examples/seed_two_layer.toml --values
"""

_TRAIN_EXAMPLES = """\
examples:
  symbackprop train examples/seed.toml
  symbackprop train examples/nielsen.toml --steps 5 --lr 0.1
  symbackprop train examples/autoencoder.toml --plot autoencoder.png
  symbackprop train examples/seed.toml --steps 3 --format json
  symbackprop train examples/softmax_classifier.toml --optimizer adam --lr 0.01 --epochs 20 --batch-size 6 --every 5
  symbackprop train examples/seed.toml --every 5 --digits 8 --show W1 --save seed.npz
"""

_EVAL_EXAMPLES = """\
examples:
  symbackprop eval examples/seed.toml a1
  symbackprop eval examples/softmax_classifier.toml z1 --digits 3
  symbackprop eval examples/nielsen.toml delta2 --format json
"""

_CHECK_EXAMPLES = """\
examples:
  symbackprop check examples/seed.toml W1 '2 * x * (W1 * x - y)'
  symbackprop check examples/seed.toml W1 'W1 - R * 2 * x * (W1 * x - y)'
  symbackprop check examples/nielsen.toml delta2 "(a2 - y) * sigmoid'(z2)"
  symbackprop check examples/seed.toml W1 -- '-2*x*(y - W1*x)'
  symbackprop check examples/seed_two_layer.toml 'W2[0,0]' 'a1[0] * 2 * (a2[0] - y[0])'
  symbackprop check examples/seed.toml W1 'x * (W1 * x - y)' --format json
"""


_GRAD_EXAMPLES = """\
examples:
  symbackprop grad 'log(det(X)) + trace(A @ X)' X --shapes X=n,n A=n,n
  symbackprop grad "x' A x" x --shapes x=n A=n,n --latex
  symbackprop grad 'log(sum(exp(x)))' x --shapes x=n --numpy
  symbackprop grad "sqrt((x - a)' (x - a))" x --shapes x=n a=n --numpy --sizes n=5
"""


class UsageError(Exception):
    """A command line argparse refused: reported like any other error, in one line."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line with a hint, not a usage block."""

    def _print_message(self, message: str, file=None) -> None:
        """argparse's, without its ``except OSError: pass``: help that cannot be written is an error, not exit 0."""
        if message:
            if file is None or file is sys.stdout:
                write_stdout(message)
            else:
                file.write(message)

    def error(self, message: str) -> NoReturn:
        hint = None
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            hint = did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        elif self.prog.endswith(" check") and "required: formula" in message:
            hint = "give SPEC PARAM FORMULA; a formula that starts with '-' goes after '--'"
        raise UsageError(f"{self.prog}: {message}", hint or f"'{self.prog} --help' shows the usage and examples")


# --- JSON ----------------------------------------------------------------------------------


def _record(**fields: Any) -> dict[str, Any]:
    """A JSON object of a fixed schema, keys sorted (lists and name-keyed maps keep the network's order)."""
    return dict(sorted(fields.items()))


def _math(expr: Any) -> dict[str, str]:
    from .printing import to_latex, to_text

    return _record(text=to_text(expr), latex=to_latex(expr))


def _number(value: float) -> float | str:
    """A float for JSON: finite numbers as they are, the others as the strings "inf", "-inf", "nan"."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _numbers(value: Any) -> Any:
    """A number or an array as JSON: a number, or nested lists (rows) of numbers."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return _number(array)
    return [_numbers(row) for row in array]


def _dumps(value: Any, indent: str = "") -> str:
    """JSON for people too: an object or a list of objects spreads over lines unless it fits in one
    (100 columns); lists of numbers or strings (shapes, matrices) always stay on one line."""
    compact = json.dumps(value, ensure_ascii=False, allow_nan=False)
    if len(indent) + len(compact) <= 100 or not _holds_object(value):
        return compact
    inner = indent + "  "
    if isinstance(value, dict):
        items = (f"{inner}{json.dumps(key, ensure_ascii=False)}: {_dumps(item, inner)}" for key, item in value.items())
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(inner + _dumps(item, inner) for item in value) + f"\n{indent}]"


def _holds_object(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and any(_holds_object(item) for item in value))


def _write_json(document: Any) -> None:
    """The document on standard output, always in UTF-8 (RFC 8259), whatever the terminal's encoding."""
    write_stdout((_dumps(document) + "\n").encode("utf-8"))


def _model_json(program) -> dict[str, Any]:
    """The ``network`` record of a layer stack, or the ``model`` record of equations."""
    net = program.source
    if isinstance(net, Network):
        return _record(
            inputs=str(net.inputs),
            widths=[str(width) for width in net.sizes[1:]],
            kinds=[layer.kind for layer in net.layers],
            activations=[activation.name for activation in net.activations],
            biases=[layer.bias for layer in net.layers],
            skip_from=[layer.skip_from for layer in net.layers],
            tied_to=[layer.tied_to for layer in net.layers],
            fixed=sorted(net.fixed),
            cost=net.cost.name,
            layout=net.layout,
            batch=str(net.batch),
            weight_decay=str(net.weight_decay),
            reduction=net.reduction,
        )
    return _record(
        inputs={i.name: [str(d) for d in i.shape] for i in program.inputs},
        parameters={q.name: [str(d) for d in q.shape] for q in program.parameters},
        fixed=[q.name for q in program.fixed],
        forward=list(net.forward),
        layout=program.layout,
    )


def _derivation_json(derivation) -> dict[str, Any]:
    program = derivation.program
    network = _model_json(program)
    steps = [
        _record(lhs=_math(step.lhs), general=_math(step.general), rhs=_math(step.rhs), rule=step.rule,
                layer=step.layer, note=step.note, quantity=step.quantity, role=step.role)
        for step in derivation.steps
    ]
    return _record(
        **({"network": network} if derivation.network is not None else {"model": network}),
        shapes={name: [str(size) for size in symbol.shape] for name, symbol in derivation.symbols.items()},
        forward=[_record(name=d.name, role=d.role, layer=d.layer, **_math(d.expr)) for d in program.forward],
        cost=_math(derivation.cost),
        steps=steps,
        deltas={name: _math(delta.definition) for name, delta in derivation.deltas.items()},
        gradients={name: _math(gradient) for name, gradient in derivation.gradients.items()},
        assumptions=list(derivation.assumptions),
    )


def _check_json(result, param: str, formula: str) -> dict[str, Any]:
    example = result.counterexample
    counterexample = None if example is None else _record(
        sizes=dict(example.sizes),
        values={name: _numbers(value) for name, value in example.values.items()},
        index=list(example.index),
        expected=_number(example.expected),
        got=_number(example.got),
    )
    return _record(ok=result.ok, param=param, formula=formula, derived=_math(result.derived),
                   message=result.message, hint=result.hint, counterexample=counterexample)


def _train_json(history, lr: float) -> dict[str, Any]:
    scalars = [name for name, scalar in history.scalar.items() if scalar]

    def figures(k: int) -> dict[str, Any]:
        extra = {}
        for key, values in (("val_cost", history.val_costs), ("accuracy", history.accuracies),
                            ("val_accuracy", history.val_accuracies)):
            if values:
                extra[key] = _number(values[k])
        return extra

    steps = [
        _record(step=k, cost=_number(cost), params={name: _number(history.values[name][k]) for name in scalars},
                **figures(k))
        for k, cost in enumerate(history.costs)
    ]
    last = len(history.costs) - 1
    final = _record(step=last, cost=_number(history.costs[-1]),
                    params={name: _numbers(array) for name, array in history.params.items()}, **figures(last))
    extra = {}
    if history.unit != "step":
        extra["unit"] = history.unit
    if history.interrupted is not None:
        extra["interrupted"] = history.interrupted
    if history.shown:
        extra["show"] = {name: _record(start=None if start is None else _numbers(start), end=_numbers(end))
                         for name, (start, end) in history.shown.items()}
    return _record(lr=lr, steps=steps, final=final, **extra)


# --- the subcommands ---------------------------------------------------------------------------


def _derive(args: argparse.Namespace) -> int:
    for option in ("latex", "markdown", "numpy"):
        _file_name(option, getattr(args, option))
    if args.format == "json":
        for option in ("latex", "markdown", "numpy"):
            if getattr(args, option) == "-":
                raise UsageError(f"symbackprop derive: --format json prints JSON on standard output, so --{option} "
                                 f"cannot print there too", f"give --{option} a file name")
    code_target, code_path = args.code if args.code else (None, None)
    _file_name("code", code_path)
    if code_target is not None:
        from .outputs.targets import TARGETS

        if code_target not in TARGETS:
            raise UsageError(f"symbackprop derive: unknown code target {code_target!r}",
                             f"the targets are {', '.join(TARGETS)}")
        if args.format == "json" and code_path == "-":
            raise UsageError("symbackprop derive: --format json prints JSON on standard output, so --code "
                             "cannot print there too", "give --code a file name")
    targets = [(option, getattr(args, option)) for option in ("latex", "markdown", "numpy")
               if getattr(args, option) is not None]
    targets += [("code", code_path)] if code_path is not None else []
    for index, (option, path) in enumerate(targets):
        for other, other_path in targets[index + 1:]:
            if path != "-" and os.path.realpath(path) == os.path.realpath(other_path):
                raise UsageError(f"symbackprop derive: --{option} and --{other} both write {path!r}",
                                 "give each output its own file")
    for option, path in targets:  # a name that cannot be a file is refused before any work
        if path != "-":
            check_path(path)
    if args.digits is not None and not args.values:
        raise UsageError("symbackprop derive: --digits sets the digits of --values", "add --values")
    if args.digits is not None and not 1 <= args.digits <= 17:
        raise UsageError(f"--digits: expected a whole number from 1 to 17, given {args.digits}", "--digits 5")
    spec = read_spec(args.spec)
    derivation = derive(spec.model)
    values = None
    if args.values:
        from .training import derivation_values

        values = derivation_values(spec)
    outputs = _typeset(derivation, args)
    if args.numpy is not None:  # after the typeset ones, as before: the order they reach standard output
        outputs.append((derivation.numpy_source(), args.numpy))
    if code_target is not None:
        outputs.append((derivation.code(code_target), code_path))
    write_outputs(outputs)  # everything rendered, then every file written, or none
    if args.format == "json":
        document = _derivation_json(derivation)
        if values is not None:
            at, arrays = values
            document["values"] = _record(at=at, quantities={name: _numbers(array) for name, array in arrays.items()})
        _write_json(document)
        return 0
    if not outputs:
        write_stdout(derivation.text())
    if values is not None:
        at, arrays = values
        from .training import format_array

        lines = "".join(format_array(name, array, args.digits or 5) for name, array in arrays.items())
        write_stdout(("\n" if not outputs else "") + f"values at {at}:\n"
                     + "".join(f"  {line}\n" for line in lines.splitlines()))
    return 0


def _file_name(option: str, path: str | None) -> None:
    """An output option's value must name a file (or be '-')."""
    if path is not None and not path.strip():
        raise UsageError(f"--{option} needs a file name, not {path!r}", f"--{option} FILE, or --{option} - for "
                         "standard output" if option != "plot" else "--plot FILE.png")


def _train(args: argparse.Namespace) -> int:
    from .training import train_spec

    _file_name("plot", args.plot)
    _file_name("save", args.save)
    for option in ("every", "digits", "batch_size", "epochs"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UsageError(f"--{option.replace('_', '-')}: expected a positive whole number, given {value}",
                             f"--{option.replace('_', '-')} 1")
    if args.digits is not None and args.digits > 17:
        raise UsageError(f"--digits: a float64 holds at most 17 significant digits, given {args.digits}",
                         "--digits 17")
    text = args.format == "text"
    overrides = {key: getattr(args, key) for key in ("batch_size", "epochs", "shuffle", "seed", "optimizer",
                                                      "momentum", "beta1", "beta2", "eps", "validation")}
    progress = _progress_bar() if text and not args.quiet and sys.stdout.isatty() else None
    setups: list = []
    history = train_spec(args.spec, plot=args.plot, steps=args.steps, lr=args.lr, out=sys.stdout if text else None,
                         save=args.save, overrides=overrides, every=args.every or 1, digits=args.digits or 5,
                         quiet=args.quiet, progress=progress, setup_out=setups, show=args.show)
    if progress is not None:
        progress.close()
    if not text:
        _write_json(_train_json(history, setups[0].lr))
    if history.interrupted is not None:
        print(f"interrupted after {history.interrupted} {history.unit}s"
              + (f"; parameters saved to {args.save}" if args.save else ""), file=sys.stderr)
        return 130
    return 0


class _progress_bar:
    """A one-line bar on a terminal (stderr), redrawn in place: steps done of all, and the last log line."""

    def __init__(self, width: int = 30):
        self.width = width
        self.drawn = False

    def __call__(self, step: int, total: int, line: str) -> None:
        if step != total and step % max(1, total // 200):
            return
        done = int(self.width * step / max(total, 1))
        bar = "#" * done + "." * (self.width - done)
        sys.stderr.write(f"\r[{bar}] {step}/{total}  {line.split('  ', 1)[-1][:60]}\x1b[K")
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _eval(args: argparse.Namespace) -> int:
    from .training import format_array, quantity_values, training_setup
    from .spec import read_spec

    if args.digits is not None and not 1 <= args.digits <= 17:
        raise UsageError(f"--digits: expected a whole number from 1 to 17, given {args.digits}", "--digits 5")
    setup = training_setup(read_spec(args.spec))
    value = quantity_values(setup, args.quantity)
    if args.format == "json":
        _write_json(_record(quantity=args.quantity, shape=list(np.atleast_2d(value).shape), values=_numbers(value)))
    else:
        write_stdout(format_array(args.quantity, value, args.digits or 5, "at the initial values"))
    return 0


def _check(args: argparse.Namespace) -> int:
    from .checking.verdicts import check

    result = check(load_spec(args.spec), args.param, args.formula)
    if args.format == "json":
        _write_json(_check_json(result, args.param, args.formula))
    else:
        write_stdout(result.message + "\n")
    return 0 if result.ok else 1


def _grad(args: argparse.Namespace) -> int:
    from .calculus.autodiff import grad
    from .calculus.program import finite_difference_check, numpy_function, random_inputs
    from .language.general import parse_general, parse_shapes
    from .printing import to_latex, to_text

    matrices = parse_shapes(args.shapes)
    if args.wrt not in matrices:
        raise UsageError(f"symbackprop grad: {args.wrt} is not one of the matrices of --shapes "
                         f"({', '.join(matrices)})", f"add {args.wrt}=ROWS,COLS to --shapes")
    expr = parse_general(args.formula, matrices)
    wrt = matrices[args.wrt]
    result = grad(expr, wrt)
    text, latex = to_text(result), to_latex(result, network_names=False)
    check = None
    if args.numpy or args.format == "json":
        sizes = {name: 3 for name in {str(d) for m in matrices.values() for d in m.shape if d.is_Symbol}}
        for item in args.sizes:
            name, _, value = item.partition("=")
            if name not in sizes or not value.isdigit() or not 1 <= int(value) <= 100:
                raise UsageError(f"symbackprop grad: --sizes takes SIZE=N for a size of --shapes "
                                 f"({', '.join(sorted(sizes)) or 'none'}), N from 1 to 100, not {item!r}",
                                 "such as --sizes n=4")
            sizes[name] = int(value)
        check = finite_difference_check(expr, result, wrt, random_inputs(expr, sizes))
        sizes_text = ", ".join(f"{name} = {value}" for name, value in sorted(sizes.items())) or "fixed sizes"
    if args.format == "json":
        _write_json(_record(expression=_record(text=to_text(expr), latex=to_latex(expr, network_names=False)),
                            wrt=args.wrt, gradient=_record(text=text, latex=latex),
                            numpy=numpy_function(result, expr, wrt),
                            check=_record(passed=check.passed, relative_error=_number(check.relative_error))))
    elif args.numpy:
        write_stdout(numpy_function(result, expr, wrt) + "\n")
        if check.passed:
            write_stdout(f"\n# checked: agrees with central finite differences at random inputs ({sizes_text}) "
                         f"to 1e-6\n")
        else:
            write_stdout(f"\n# check FAILED: off central finite differences at random inputs ({sizes_text}) "
                         f"by a relative {check.relative_error:.1e}\n")
    elif args.latex:
        write_stdout(rf"\frac{{\partial}}{{\partial {to_latex(wrt, network_names=False)}}}"
                     rf"\left({to_latex(expr, network_names=False)}\right) = {latex}" + "\n")
    else:
        write_stdout(f"∂/∂{args.wrt} [{to_text(expr)}] = {text}" + "\n")
    return 0 if check is None or check.passed else 1


def _typeset(derivation, args: argparse.Namespace) -> list[tuple[str, str]]:
    """The ``--latex`` and ``--markdown`` renderings, as (text, path), for :func:`write_outputs`."""
    from .outputs.documents import parse_notation

    if args.standalone and args.latex is None:
        raise NotationError("--standalone needs --latex FILE")
    notation = parse_notation(args.notation)
    outputs = []
    if args.latex is not None:
        outputs.append((derivation.latex(args.standalone, **notation), args.latex))
    if args.markdown is not None:
        outputs.append((derivation.markdown(**notation), args.markdown))
    if args.notation and not outputs:
        raise NotationError("--notation needs --latex FILE or --markdown FILE")
    return outputs


# --- the parser --------------------------------------------------------------------------------


def _formatter(prog: str) -> argparse.HelpFormatter:
    """Help laid out for 80 columns whatever the terminal, so it reads the same everywhere (and in docs/cli.md)."""
    return argparse.RawDescriptionHelpFormatter(prog, width=80)


def _subcommand(commands, name: str, summary: str, description: str, examples: str, run) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=textwrap.fill(description, 78), epilog=examples,
                                 formatter_class=_formatter)
    parser.set_defaults(run=run)
    return parser


def _format_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help=f"text (default): readable formulas; json: {what} as one JSON document")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="symbackprop",
        description="Backpropagation in matrix form: derive, typeset, code and check the gradient\n"
                    "of every layer of a network.",
        epilog=_EXAMPLES,
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"symbackprop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    derive_parser = _subcommand(
        commands, "derive", "derive every layer's gradient; typeset it, or write NumPy code",
        "Derive the gradient of the cost for every weight and bias of the network in SPEC by the matrix "
        "chain rule, and print the forward pass, each chain-rule step, the deltas and the gradients. "
        "--latex, --markdown and --numpy write the derivation as a LaTeX document, as Markdown, or as "
        "a NumPy module instead.",
        _DERIVE_EXAMPLES, _derive)
    derive_parser.add_argument("spec", help="a TOML spec file describing the network (docs/spec.md)")
    _format_option(derive_parser, "the network, shapes, steps, deltas and gradients, each in text and LaTeX")
    derive_parser.add_argument("--latex", metavar="FILE", help="write the derivation as LaTeX to FILE ('-': stdout)")
    derive_parser.add_argument("--standalone", action="store_true",
                               help="with --latex: a whole document that compiles with pdflatex")
    derive_parser.add_argument("--markdown", metavar="FILE",
                               help="write the derivation as Markdown ($$ blocks) to FILE ('-': stdout)")
    derive_parser.add_argument("--notation", metavar="KEY=VALUE", action="append", default=[],
                               help="notation for --latex/--markdown: learning_rate=R, symbols.W1=w, bold=true, "
                                    "scalar=true, inline=true, line_width=40 (repeatable)")
    derive_parser.add_argument("--numpy", metavar="FILE",
                               help="write a standalone NumPy module (forward, cost, gradients, step) to FILE "
                                    "('-': stdout)")
    derive_parser.add_argument("--values", action="store_true",
                               help="also print every quantity's values (data, parameters, z, a, the cost, deltas, "
                                    "gradients) at the [train] data and initial values, or at random ones")
    derive_parser.add_argument("--digits", type=int, metavar="D", help="with --values: significant digits (default 5)")
    derive_parser.add_argument("--code", nargs=2, metavar=("TARGET", "FILE"),
                               help="write the update code for TARGET (numpy, torch, jax or octave) to FILE "
                                    "('-': stdout); the same formulas in each")

    train_parser = _subcommand(
        commands, "train", "train the network by gradient descent, as its [train] table says",
        "Train the network in SPEC by gradient descent with the generated NumPy step, on the data, "
        "initial values, learning rate and number of steps of its [train] table, and print the cost "
        "and every 1x1 parameter after each step (step 0 is the start). Mini-batches, epochs, "
        "shuffling, momentum or Adam (on the generated gradients) and a validation split are keys of "
        "[train] or the options below; a cross-entropy classifier's lines show its accuracy. Ctrl-C "
        "keeps what was reached (--save, --plot, JSON) and exits 130.",
        _TRAIN_EXAMPLES, _train)
    train_parser.add_argument("spec", help="a TOML spec file with a [train] table (docs/cli.md)")
    _format_option(train_parser, "every step's cost and the final parameters")
    train_parser.add_argument("--plot", metavar="FILE.png", help="draw the cost and the parameters over the steps "
                                                                 "(needs matplotlib: pip install 'symbackprop[plot]')")
    train_parser.add_argument("--steps", type=int, metavar="N", help="number of steps (overrides [train].steps and epochs)")
    train_parser.add_argument("--lr", type=float, metavar="RATE", help="learning rate (overrides [train].lr)")
    train_parser.add_argument("--batch-size", type=int, metavar="N",
                              help="samples per update: mini-batches (overrides [train].batch_size; default all)")
    train_parser.add_argument("--epochs", type=int, metavar="N",
                              help="passes over the data, one log line each (overrides [train].epochs and steps)")
    train_parser.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=None,
                              help="reshuffle the samples every epoch, seeded by --seed (default: on)")
    train_parser.add_argument("--seed", type=int, metavar="N", help="seed for random values and shuffling "
                                                                    "(overrides [train].seed)")
    train_parser.add_argument("--optimizer", choices=("sgd", "momentum", "adam"),
                              help="sgd (the generated step), momentum or adam (default sgd)")
    train_parser.add_argument("--momentum", type=float, metavar="MU", help="momentum's μ (default 0.9)")
    train_parser.add_argument("--beta1", type=float, metavar="B", help="adam's β₁ (default 0.9)")
    train_parser.add_argument("--beta2", type=float, metavar="B", help="adam's β₂ (default 0.999)")
    train_parser.add_argument("--eps", type=float, metavar="E", help="adam's ε (default 1e-8)")
    train_parser.add_argument("--validation", type=float, metavar="FRACTION",
                              help="hold out this fraction of the samples, seeded (overrides [train].validation)")
    train_parser.add_argument("--every", type=int, metavar="N", help="print every N-th step or epoch (and the last)")
    train_parser.add_argument("--quiet", action="store_true", help="print only the last step's line")
    train_parser.add_argument("--digits", type=int, metavar="D", help="significant digits of the figures (default 5)")
    train_parser.add_argument("--show", metavar="NAME", action="append", default=[],
                              help="print a parameter's final value, or a forward quantity's (a1, z2) at the start "
                                   "and the end, whatever its shape (repeatable)")
    train_parser.add_argument("--save", metavar="FILE.npz", help="write the parameters reached to FILE.npz, also "
                                                                 "when interrupted; init = \"FILE.npz\" reads them")

    eval_parser = _subcommand(
        commands, "eval", "the values of a named quantity (a1, z2, delta1) on the [train] data",
        "Compute the forward values of QUANTITY (z1, a1, …, the output, the cost's deltas delta1, …, or a "
        "parameter) on the data and initial values of SPEC's [train] table, as training starts, so that a "
        "hand computation can be compared with them.",
        _EVAL_EXAMPLES, _eval)
    eval_parser.add_argument("spec", help="a TOML spec file with a [train] table (docs/cli.md)")
    eval_parser.add_argument("quantity", help="a named quantity: z1, a1, a2, delta1, W1, X, …")
    _format_option(eval_parser, "the quantity's name, shape and values")
    eval_parser.add_argument("--digits", type=int, metavar="D", help="significant digits (default 5)")

    check_parser = _subcommand(
        commands, "check", "check a hand-derived gradient, delta or update rule",
        "Decide whether FORMULA is the derivative of the cost with respect to PARAM (or the delta "
        "PARAM, or PARAM's update when FORMULA names a learning rate R, eta, lr or alpha); when it is "
        "not, show where the two differ and which usual slip explains it. Exit status 0: right, "
        "1: wrong, 2: bad input. The formula language is described in docs/formula-language.md; a "
        "formula that starts with '-' goes after '--', so that it is not read as an option.",
        _CHECK_EXAMPLES, _check)
    check_parser.add_argument("spec", help="a TOML spec file describing the network")
    check_parser.add_argument("param", help="the parameter (W1, b2, W^{(1)}), delta (delta1) or one entry of "
                                            "either (W2[0,1], from 0) the formula is for")
    check_parser.add_argument("formula", help="the formula: plain (W2.T @ delta2) or LaTeX (W^{(2)\\top} \\delta^{(2)})")
    _format_option(check_parser, "the verdict, derived expression, hint and counterexample")

    grad_parser = _subcommand(
        commands, "grad", "the gradient of one matrix expression, as matrixcalculus.org gives it",
        "Differentiate the scalar FORMULA (in the formula language of docs/formula-language.md, with "
        "det, inv, trace, diag, kron, log, exp, sqrt and abs) with respect to the matrix WRT, and print "
        "the gradient, shaped like WRT, in text, or with --latex in LaTeX, or with --numpy as a NumPy "
        "function followed by a check against central finite differences at random inputs (exit "
        "status 1 if they disagree). --shapes gives every matrix's shape: X=n,n, or x=n for a column "
        "vector.",
        _GRAD_EXAMPLES, _grad)
    grad_parser.add_argument("formula", help="a scalar expression, such as 'log(det(X)) + trace(A @ X)'")
    grad_parser.add_argument("wrt", help="the matrix to differentiate by, one of --shapes")
    grad_parser.add_argument("--shapes", nargs="+", metavar="NAME=ROWS,COLS", required=True,
                             help="each matrix's shape, sizes as numbers or names: X=n,n A=n,n x=n")
    output = grad_parser.add_mutually_exclusive_group()
    output.add_argument("--latex", action="store_true", help="print the gradient in LaTeX")
    output.add_argument("--numpy", action="store_true",
                        help="print a NumPy function for the gradient and a finite-difference check")
    grad_parser.add_argument("--sizes", nargs="+", metavar="SIZE=N", default=[],
                             help="with --numpy: the sizes of the check's random inputs (default 3 each)")
    _format_option(grad_parser, "the expression, gradient, NumPy code and check")
    return parser


# --- errors ------------------------------------------------------------------------------------


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON, read before parsing, so usage errors can be JSON too."""
    argv = list(argv)
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--format=json" in options or any(a == "--format" and b == "json" for a, b in zip(options, options[1:]))


def _report(error: BaseException, message: str, hint: str | None, as_json: bool, position: int | None = None) -> None:
    """One line on standard error: ``error: MESSAGE (hint: HINT)``, or a JSON object."""
    message = " ".join(message.split("\n"))
    if as_json:
        # ASCII, as standard error keeps the terminal's encoding
        line = json.dumps(_record(error=message, hint=hint, position=position, type=type(error).__name__))
    else:
        line = f"error: {message}" + (f" (hint: {hint})" if hint else "")
    print(line, file=sys.stderr)


def _formula_inside(error: BaseException) -> tuple[str, list[str], int | None, str | None]:
    """An error's message without the caret display of a formula error it was raised from (a spec file's
    custom activation or [model] line that does not parse), that display, the formula's position and its
    hint.

    Such errors are raised ``from None`` while handling the FormulaSyntaxError, whose ``__context__`` Python
    keeps; the message holds the formula error's text, carets and all, which one line cannot show.
    """
    message = str(error)
    cause, seen = error.__context__, 0
    while cause is not None and not isinstance(cause, FormulaSyntaxError) and seen < 10:
        cause, seen = cause.__context__, seen + 1
    if not isinstance(cause, FormulaSyntaxError):
        return message, [], None, None
    lines, caret = message.split("\n"), cause.caret()
    for start in range(len(lines) - len(caret) + 1) if caret else ():
        if lines[start:start + len(caret)] == caret:
            return "\n".join(lines[:start] + lines[start + len(caret):]), caret, cause.position, cause.hint
    return message, [], cause.position, cause.hint


def _silence_stdout() -> None:
    """Point the process's standard output at the null device, so exiting does not flush into the failure again."""
    if sys.stdout is sys.__stdout__ and sys.stdout is not None:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
        except (OSError, ValueError):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status: 0 done, 1 a checked formula is wrong, 2 bad input or
    output, 3 an internal error (a bug)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = _wants_json(argv)
    try:
        if sys.stdout is None:  # started with standard output closed
            raise OSError(0, "it is closed")
        try:
            args = _parser().parse_args(argv)
            code = args.run(args)
        except SystemExit as exit:  # --help and --version
            code = exit.code if isinstance(exit.code, int) else 0
        sys.stdout.flush()
        return code
    except FormulaSyntaxError as err:
        _report(err, err.located(), err.hint, as_json, err.position)
        if not as_json:  # the formula with a caret under the fault, below the one-line error
            for line in err.caret():
                print(f"       {line}", file=sys.stderr)
        return 2
    except (SymbackpropError, UsageError) as err:
        message, caret, position, hint = _formula_inside(err)
        _report(err, message, err.hint or hint, as_json, position)
        if not as_json:  # a spec's formula (a custom activation, a [model] line) with a caret, as a typed one
            for line in caret:
                print(f"       {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130  # as a shell reports a command stopped by Ctrl-C
    except BrokenPipeError:  # the reader left (``| head``): it has what it wanted
        _silence_stdout()
        return 0
    except UnicodeEncodeError as err:
        _report(err, f"standard output's encoding ({err.encoding}) cannot show the formulas",
                "set PYTHONIOENCODING=utf-8, or use --format json (always UTF-8)", as_json)
        _silence_stdout()
        return 2
    except OSError as err:  # writing to standard output failed: a full disk, a closed descriptor
        _report(err, f"cannot write to standard output: {err.strerror or err}", None, as_json)
        _silence_stdout()
        return 2
    except MemoryError:
        _report(MemoryError(), "not enough memory for these sizes", "use smaller sizes or fewer samples", as_json)
        return 2
    except Exception as err:  # a bug in symbackprop: never a traceback, and never the exit status of a verdict
        _report(err, f"internal error: {type(err).__name__}: {err}",
                "this is a bug in symbackprop; please report it with the command that caused it", as_json)
        return 3

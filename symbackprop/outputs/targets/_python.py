"""What the PyTorch and JAX targets share: a generator over the plan, helper sources, the module's pieces.

A target module (:mod:`.torch`, :mod:`.jax`) gives a printer subclass of
:class:`~symbackprop.printing.numpy.NumPyCodePrinter`, the source of its
stable helpers and support functions, and a template; :class:`TensorGenerator`
prints the shared :class:`~.plan.Plan` with that printer.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from typing import Mapping

import sympy
from sympy import Piecewise

from ... import naming
from ...derive import Derivation
from ...errors import SpecError
from ...printing.numpy import NumPyCodePrinter
from ..codegen import Function, Program, _check_names, _Generator, _shape_constant, _Statement
from ..templating import environment
from . import _support


class TargetPrinter(NumPyCodePrinter):
    """A NumPy printer whose ``numpy.<name>`` calls become the engine's (``names_map``); others are refused."""

    #: the engine's name for users ("PyTorch")
    engine = ""
    #: ``numpy`` name → the engine's function
    names_map: Mapping[str, str] = {}

    def __init__(self, settings=None) -> None:
        super().__init__(settings)
        self.unsupported: dict[str, None] = {}

    def _module_format(self, fqn: str, register: bool = True) -> str:
        name = fqn.removeprefix("numpy.")
        if fqn.startswith("numpy.") and name in self.names_map:
            return self.names_map[name]
        self.unsupported[fqn] = None
        return fqn

    def refuse(self, what: str) -> str:
        self.unsupported[what] = None
        return what


def helper_sources(table: Mapping[str, str], names, engine: str) -> list[str]:
    """The sources of the helpers ``names`` and of those they call, in the table's order."""
    wanted, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name in wanted:
            continue
        if name not in table:
            raise SpecError(f"the {engine} target has no helper {name!r}; generate NumPy code instead")
        wanted.add(name)
        calls = set(re.findall(r"\b([a-z_0-9]+)\(", table[name].strip("\n").split("\n", 1)[1]))
        stack.extend(n for n in table if n in calls and n != name)
    return [table[name].strip("\n") for name in table if name in wanted]


def require(package: str, engine: str, install: str) -> None:
    """Raise a clear error when ``package`` is not installed (only checked where code is run, not written)."""
    if importlib.util.find_spec(package) is None:
        raise SpecError(f"the {engine} target needs the package {package!r}, which is not installed; "
                        f"install it with: {install}")


class TensorGenerator(_Generator):
    """The plan printed for an engine whose arrays are tensors (PyTorch, JAX)."""

    arguments = {"forward": "params, X", "cost": "params, X, Y", "gradients": "params, X, Y",
                 "cost_and_gradients": "params, X, Y", "step": "params, X, Y, lr"}

    def _fixed(self, parameter) -> _Statement:
        shape = "(" + ", ".join(self.printer.doprint(d) for d in parameter.shape) + ",)"
        reads = tuple(str(d) for d in parameter.shape if d.is_Symbol)
        return _Statement(parameter.name, f"{parameter.name} = {self.fixed_value(parameter.name, shape)}", reads)

    def fixed_value(self, name: str, shape: str) -> str:
        raise NotImplementedError

    def checked(self, code: str) -> str:
        if self.printer.unsupported:
            what = ", ".join(self.printer.unsupported)
            raise SpecError(f"the {self.printer.engine} target cannot print {what}; "
                            f"generate NumPy code for this derivation instead")
        return code

    def print(self, expr, full: bool = True):
        code, names, symbols = super().print(expr, full)
        return self.checked(code), names, symbols

    def forward(self) -> Function:
        return self.function("forward", "The network's output a⁽ᴸ⁾ for the inputs X.",
                             [_Statement(None, f"return {self.plan.output}", (self.plan.output,))])

    def cost(self) -> Function:
        code, names, symbols = self.print(self.plan.cost)
        return self.function("cost", "The cost C at ``params`` for inputs X and targets Y (a 0-d array).",
                             [_Statement(None, f"return {code}", names + symbols)])

    def _gradient_entries(self):
        entries, reads = {}, []
        for name, gradient in self.plan.gradients.items():
            entries[name], names, symbols = self.print(gradient)
            reads += [*names, *symbols]
        return entries, reads

    def gradients(self) -> Function:
        entries, reads = self._gradient_entries()
        return self.function("gradients", "∂C/∂W⁽¹⁾, ∂C/∂b⁽¹⁾, … at ``params``: a dict shaped like ``params``.",
                             [self._returning(entries, reads)])

    def cost_and_gradients(self) -> Function:
        """The cost and the gradients from one forward pass (what the autodiff hooks call)."""
        cost, names, symbols = self.print(self.plan.cost)
        entries, reads = self._gradient_entries()
        lines = [f"return {cost}, {{", *(f'    "{name}": {code},' for name, code in entries.items()), "}"]
        return self.function("cost_and_gradients",
                             "C and the dict of its gradients, from one forward and one backward pass.",
                             [_Statement(None, "\n".join(lines), (*names, *symbols, *reads))])

    def hyper(self) -> list[str]:
        """The scalar settings (weight decay) that cost and gradients take as keywords."""
        function = self.cost_and_gradients()
        signature = function.signature
        return [h.strip() for h in signature.split("*,", 1)[1].split(",")] if "*," in signature else []

    def init_params(self, signature: str) -> Function:
        sizes = sorted({d for p in self.p.trained for d in _shape_constant(p.shape) if isinstance(d, str)})
        example = ", ".join(f"{s}=4" for s in sizes)
        return Function("init_params", signature,
                        "Random parameters: weights from N(0, 1/fan-in), biases zero"
                        + (f"; give the sizes, e.g. ``init_params(0, {example})``." if sizes else "."),
                        (f"return _random_parameters(SHAPES, FAN_IN, {signature.split('=')[0]}, dtype, sizes"
                         + (", device)" if "device" in signature else ")"),))

    def custom_helper(self, name: str, variable: sympy.Symbol, expression, full_like: str) -> Function:
        """A custom activation (or a derivative of it) as a function of one array."""
        code = self.checked(self.printer.doprint(expression))
        if self.printer._not_supported or expression.has(Piecewise):
            raise SpecError(f"the activation {name.split('_grad')[0]!r} cannot be written for "
                            f"{self.printer.engine}; generate NumPy code for it instead")
        argument = self.printer.doprint(variable)
        if not expression.has(variable):
            code = f"{full_like}({argument}, {code})"
        return Function(name, argument, f"{expression}, entry by entry.", (f"return {code}",))


#: names the PyTorch and JAX modules define beyond the NumPy module's
RESERVED = {"torch", "jax", "jnp", "cost_and_gradients", "CostFunction", "Network", "cost_vjp", "_cost_vjp_forward",
            "_cost_vjp_backward", "hyper"}


@dataclass(frozen=True)
class TensorProgram(Program):
    """What a tensor module's template needs: the NumPy module's pieces, and the hyper-parameter names."""

    hyper: tuple[str, ...] = ()


def tensor_program(derivation: Derivation, generator: TensorGenerator, api: list[Function], support: list[str],
                   custom_full_like: str) -> TensorProgram:
    g = generator
    model = derivation.program
    custom = [g.custom_helper(name, variable, expression, custom_full_like)
              for name, (variable, expression) in sorted(g.printer.custom.items())]
    helpers = helper_sources(g.helper_table, g.printer.helpers, g.printer.engine)
    try:
        _check_names(g, [h.split("(")[0].removeprefix("def ") for h in helpers], custom)
    except SpecError as error:  # the NumPy module's names are this module's too
        raise SpecError(str(error).replace("NumPy", g.printer.engine)) from None
    for name in [f.name for f in custom] + [g.printer.doprint(s) for s in (*model.size_symbols, *model.scalars)]:
        if name in RESERVED:
            raise SpecError(f"the name {name!r} is a name the generated {g.printer.engine} code uses; rename it")
    columns = model.layout == "columns"
    return TensorProgram(
        summary=f"Backpropagation for {model.title}.",
        derivation=tuple(derivation.text().rstrip("\n").splitlines()),
        params=g.params,
        shapes=tuple((p.name, _shape_constant(p.shape)) for p in model.trained),
        fixed=tuple((p.name, p.value.tolist() if hasattr(p.value, "tolist") else p.value) for p in model.fixed),
        data_shapes=tuple((name, _shape_constant(derivation.symbols[name].shape))
                          for name in (naming.INPUT, naming.TARGET)),
        fan_in={p.name: p.fan_in for p in model.trained if p.init == "weight"},
        helpers=tuple(helpers + [s.strip("\n") for s in support] + _support.sources()),
        functions=(*custom, *api),
        layout_note="samples are columns: X is features × samples" if columns
        else "samples are rows: X is samples × features",
        hyper=tuple(g.hyper()),
    )


def render(template: str, p: TensorProgram, exports) -> str:
    from ... import __version__

    env = environment()
    env.filters["pyrepr"] = repr
    env.filters["keyword"] = lambda name: f"{name}={name}"
    return env.get_template(template).render(
        summary=p.summary, version=__version__, params=p.params, layout_note=p.layout_note,
        derivation=p.derivation, functions=p.functions, exports=exports, shapes=p.shapes, fixed=p.fixed,
        data_shapes=p.data_shapes, fan_in=p.fan_in, helpers=p.helpers, hyper=p.hyper,
    )


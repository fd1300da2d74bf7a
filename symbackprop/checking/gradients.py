"""Numeric proof of a derivation: gradients against central finite differences.

One checker serves users and the tests.  :func:`random_values` draws inputs,
targets and parameters valid for the network's cost (targets in (0, 1) for
binary cross-entropy, probability distributions for softmax cross-entropy) at
concrete sizes; :func:`check_gradients` compares, for each parameter, the
evaluated gradient along a random direction ``v`` with the cost's central
difference along ``v``, Richardson-extrapolated so the error is O(ε⁴).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np
import sympy

from ..derive import Derivation
from ..errors import SymbackpropError
from ..calculus.numeric import Evaluator, evaluate

#: random values are drawn for at most this many numbers in all (800 MB of float64)
MAX_RANDOM_ENTRIES = 10**8

__all__ = ["MAX_RANDOM_ENTRIES", "random_values", "check_gradients", "GradientCheck", "ParameterCheck", "directional_difference"]


def random_values(
    model: object,
    *,
    sizes: Mapping[str, int] | None = None,
    seed: int | np.random.Generator = 0,
) -> dict[str, object]:
    """Random inputs, targets and parameters for ``model`` (a Network, a Model or a Program), at concrete sizes.

    Symbolic sizes take the value in ``sizes`` or a random value from 1 to 4;
    their names are included in the result (``"m": 3``).  Weights are drawn
    with variance 1/fan-in (LeCun's scaling), so activations stay of order
    one and sigmoids do not saturate: finite differences stay informative.
    Targets are valid for the cost (in (0, 1) for binary cross-entropy,
    probability distributions for softmax cross-entropy); fixed parameters
    take their values.
    """
    from ..derive import program_of

    program = program_of(model)
    rng = np.random.default_rng(seed)
    chosen = dict(sizes or {})
    values: dict[str, object] = {}
    for symbol in program.size_symbols:
        values[symbol.name] = int(chosen.get(symbol.name, rng.integers(1, 5)))
    numbers = {sympy.Symbol(k, integer=True, positive=True): sympy.Integer(v) for k, v in values.items()}

    def shape(symbolic) -> tuple[int, int]:
        return tuple(int(sympy.sympify(d).xreplace(numbers)) for d in symbolic)  # type: ignore[return-value]

    entries = sum(int(np.prod([float(d) for d in shape(q.shape)])) for q in (*program.inputs, *program.parameters))
    if entries > MAX_RANDOM_ENTRIES:
        raise SymbackpropError(f"drawing random values for every matrix would take {entries:.3g} numbers, more than "
                               f"{MAX_RANDOM_ENTRIES:.0e}; give the large sizes as symbols (\"m\", \"n_1\")")
    axis = 0 if program.layout == "columns" else 1
    for item in program.inputs:
        concrete = shape(item.shape)
        if item.role == "target" and program.target_kind == "probabilities":
            values[item.name] = rng.uniform(0.05, 0.95, size=concrete)
        elif item.role == "target" and program.target_kind == "distributions":
            raw = rng.uniform(0.05, 1.0, size=concrete)
            values[item.name] = raw / raw.sum(axis=axis, keepdims=True)
        elif item.kind == "one_hot":  # one 1 per sample, at a random word
            words = rng.integers(0, concrete[axis], size=concrete[1 - axis])
            one_hot = np.zeros(concrete)
            if axis == 0:
                one_hot[words, np.arange(concrete[1])] = 1.0
            else:
                one_hot[np.arange(concrete[0]), words] = 1.0
            values[item.name] = one_hot
        elif item.kind == "mask":  # each entry kept with probability 1 − p
            values[item.name] = (rng.random(concrete) >= (item.rate or 0.0)).astype(np.float64)
        else:
            values[item.name] = rng.normal(size=concrete)
    for parameter in program.parameters:
        concrete = shape(parameter.shape)
        if not parameter.trained:
            values[parameter.name] = parameter.fixed_array(concrete)
        elif parameter.init == "weight":
            values[parameter.name] = rng.normal(scale=1 / np.sqrt(concrete[parameter.fan_in]), size=concrete)
        elif parameter.init == "ones":  # a scale such as γ: near one, never near zero
            values[parameter.name] = rng.uniform(0.5, 1.5, size=concrete)
        else:
            values[parameter.name] = rng.normal(scale=0.5, size=concrete)
    for symbol in program.scalars:
        values[symbol.name] = float(rng.uniform(0.01, 0.5))
    return values


def directional_difference(cost, values: Mapping[str, object], name: str, direction: np.ndarray,
                           step: float = 1e-3) -> float:
    """d/dt cost(values with ``name`` + t·direction) at t = 0, by Richardson-extrapolated central differences."""

    def at(t: float, dtype=np.longdouble):
        # extended precision where the platform has it: the difference of two
        # nearby costs loses digits, and long double keeps about three more
        moved = {k: np.asarray(v, dtype=dtype) if isinstance(v, (list, np.ndarray)) else v
                 for k, v in values.items()}
        moved[name] = moved[name] + dtype(t) * np.asarray(direction, dtype=dtype)
        try:
            return np.asarray(Evaluator(moved)(cost), dtype=dtype).sum()
        except TypeError:  # np.linalg (inverse, determinant) has no long double
            if dtype is np.float64:
                raise
            return at(t, np.float64)

    def central(h: float) -> float:
        return (at(h) - at(-h)) / (2 * h)

    return float((4 * central(step / 2) - central(step)) / 3)


@dataclass(frozen=True)
class ParameterCheck:
    """One parameter's comparison: the gradient along ``v`` and the finite difference."""

    name: str
    analytic: float
    numeric: float
    resolution: float = 0.0

    @property
    def relative_error(self) -> float:
        """The difference relative to the larger value, or to what the difference quotient can resolve.

        A difference quotient with step h carries rounding noise of about
        ε·|C|/h (ε the machine epsilon of the evaluation), and the evaluated
        gradient about ε₆₄·|C|; ``resolution`` is 10⁶ times their sum, so a directional derivative far below the noise (a
        vanishing gradient, an exact zero) is compared with the absolute
        tolerance 10⁻⁶ × resolution ≈ ε·|C|/h instead of relatively.
        """
        scale = max(abs(self.analytic), abs(self.numeric), self.resolution, 1e-300)
        return abs(self.analytic - self.numeric) / scale


@dataclass(frozen=True)
class GradientCheck:
    """The result of :func:`check_gradients`; true when every parameter agrees."""

    parameters: tuple[ParameterCheck, ...]
    tolerance: float

    @property
    def ok(self) -> bool:
        return all(p.relative_error < self.tolerance for p in self.parameters)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def message(self) -> str:
        lines = [
            f"{p.name}: gradient·v = {p.analytic:.12g}, finite difference = {p.numeric:.12g}, "
            f"relative error {p.relative_error:.2e}"
            for p in self.parameters
        ]
        return ("all gradients agree" if self.ok else "gradients disagree") + "\n" + "\n".join(lines)


def check_gradients(
    derivation: Derivation,
    values: Mapping[str, object] | None = None,
    *,
    seed: int = 0,
    tolerance: float = 1e-6,
) -> GradientCheck:
    """Compare every derived gradient with finite differences of the cost.

    >>> from symbackprop import Dense, Network, derive
    >>> d = derive(Network("n_0", [Dense(4, "tanh"), Dense(2, "sigmoid")], batch="m"))
    >>> check_gradients(d).ok
    True
    """
    rng = np.random.default_rng(seed)
    if values is None:
        values = random_values(derivation.program, seed=rng)
    values = dict(values)
    for name in derivation.gradients:  # a scalar for a 1×1 parameter, as evaluate accepts
        if name in values and np.ndim(values[name]) < 2 and np.size(values[name]) == 1:
            values[name] = np.reshape(np.asarray(values[name], dtype=np.float64), (1, 1))
    step = 1e-3  # Richardson's O(h⁴) error is then ~1e-12, and rounding noise small
    cost = evaluate(derivation.cost, values)
    kinks = derivation.program.kinked
    checks = []
    for name, gradient in derivation.gradients.items():
        g = np.asarray(evaluate(gradient, values), dtype=np.float64)
        expected = np.shape(np.asarray(values[name]))
        if g.shape != expected:
            raise AssertionError(f"gradient of {name} has shape {g.shape}, the parameter {expected}")
        direction = rng.normal(size=g.shape)
        for _ in range(20):  # a direction whose difference quotient straddles no kink
            if not _crosses_kink(kinks, values, name, direction, step):
                break
            direction = rng.normal(size=g.shape)
        analytic = float(np.sum(g * direction))
        for h in (step, step / 10, step / 100):
            # noise of the difference quotient, plus the float64 rounding of the gradient itself
            resolution = 1e6 * abs(cost) * (float(np.finfo(np.longdouble).eps) / h + float(np.finfo(np.float64).eps))
            check = ParameterCheck(name, analytic, directional_difference(derivation.cost, values, name, direction, h),
                                   resolution)
            # a steep cost (a softmax of large scores) leaves Richardson's O(h⁴) error above the tolerance at
            # h = 1e-3: a smaller step shrinks it 10⁴-fold, while a wrong gradient stays wrong at every step
            if check.relative_error < tolerance:
                break
        checks.append(check)
    # A gradient that is exactly zero (a bias just before a batch normalisation, which removes any
    # constant) comes out of float64 cancellations as noise of the size of the other gradients times
    # the machine epsilon, amplified by 1/σ: it is compared with 10⁻¹² of the largest directional
    # derivative, not relatively.
    largest = max((max(abs(c.analytic), abs(c.numeric)) for c in checks), default=0.0)
    checks = [replace(c, resolution=max(c.resolution, largest / tolerance * 1e-12)) for c in checks]
    return GradientCheck(tuple(checks), tolerance)


def _crosses_kink(kinks: list, values: Mapping[str, object], name: str, direction: np.ndarray, step: float) -> bool:
    """True when moving ``name`` by ±step·direction changes the sign of some kinked pre-activation."""
    if not kinks:
        return False
    signs = []
    for t in (-step, 0.0, step):
        moved = dict(values)
        moved[name] = np.asarray(values[name], dtype=np.float64) + t * direction
        evaluator = Evaluator(moved)  # one per offset: the layers below each kink are shared
        signs.append([np.sign(evaluator(z)) for z in kinks])
    return any(not np.array_equal(a, b) for before, after in zip(signs, signs[1:]) for a, b in zip(before, after))

"""The layer library: each kind of layer is a builder that appends named definitions to a program.

A layer kind knows three things: the width it outputs given the width below
it, the parameters it owns (with their shapes in a layout and how they start),
and the definitions it appends — each with its role and layer number — when
:meth:`~symbackprop.model.network.Network.program` builds the program.  Nothing
after the program knows what a layer is (see ``docs/architecture.md``).

* :class:`LayerNorm` and :class:`BatchNorm` append μ, σ, x̂ = (x − μ) ⊘ σ and
  a = γ ⊙ x̂ + β, normalising each sample over its features or each feature
  over the batch;
* :class:`Attention` appends Q, K, V, S = τ Q Kᵀ, P = softmax(S), O = P V and
  a = O W_O (rows layout; the transpose of every line in columns);
* :class:`Embedding` appends a = E X for one-hot X (generated code also takes ids);
* :class:`Dropout` appends a = M ⊙ x / (1 − p) with a mask input M.

:class:`~symbackprop.model.network.Dense` lives in :mod:`.network`, beside the
network it was first written for.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import sympy
from sympy import MatAdd, MatrixSymbol, OneMatrix

from .. import naming
from ..calculus.expressions import Constant, Deviation, Named, Normalize, Softmax, hadamard, spread
from ..errors import SpecError

if TYPE_CHECKING:
    from .network import Network

__all__ = ["LayerNorm", "BatchNorm", "Attention", "Embedding", "Dropout", "KINDS", "Builder"]


def _check_skip(value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise SpecError(f"skip_from must be a layer number (0 for the input), not {value!r}")


def _epsilon(value) -> sympy.Rational:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) < 1:
        raise SpecError(f"eps must be a small positive number (such as 1e-5), not {value!r}")
    return sympy.Rational(Fraction(str(value)))


class Builder:
    """What a layer kind appends to: the program under construction.

    ``define`` appends a definition and returns its :class:`Named` node;
    ``parameter`` gives a parameter's symbol; ``add_input`` declares an input
    (a dropout mask).
    """

    def __init__(self, net: "Network", parameters: dict, scope) -> None:
        self.net = net
        self.columns = net.layout == "columns"
        self.parameters = parameters
        self.scope = scope
        self.definitions: list = []
        self.inputs: list = []

    def define(self, name: str, expr, role: str, layer: int, named: bool = False) -> Named:
        from .program import Definition

        node = Named(name, expr, self.scope)
        self.definitions.append(Definition(node, role, layer, named=named))
        return node

    def parameter(self, name: str) -> MatrixSymbol:
        return self.parameters[name].symbol

    def add_input(self, name: str, shape, kind: str, layer: int, rate=None) -> MatrixSymbol:
        from .program import Input

        symbol = MatrixSymbol(name, *shape)
        self.inputs.append(Input(symbol, "data", kind, rate=rate, layer=layer))
        return symbol


def _feature_shape(columns: bool, width):
    one = sympy.Integer(1)
    return (width, one) if columns else (one, width)


def _weight_shape(columns: bool, n_in, n_out):
    """A dense weight from ``n_in`` to ``n_out``: n_out×n_in in columns, n_in×n_out in rows."""
    return (n_out, n_in) if columns else (n_in, n_out)


@dataclass(frozen=True)
class _Normalization:
    """Shared by :class:`LayerNorm` and :class:`BatchNorm`: x̂ along one axis, then γ ⊙ x̂ + β."""

    eps: float = 1e-5
    skip_from: int | None = None

    kind = "normalization"
    tied_to = None
    bias = False
    #: normalise over the features of each sample (True) or over the batch for each feature (False)
    over_features = True

    def __post_init__(self) -> None:
        _epsilon(self.eps)
        _check_skip(self.skip_from)

    def output_width(self, below):
        return below

    def parameter_specs(self, layer: int, below, columns: bool) -> dict:
        shape = _feature_shape(columns, below)
        return {naming.layered("gamma", layer): (shape, "ones", 0),
                naming.layered("beta", layer): (shape, "zeros", 0)}

    def axis(self, columns: bool) -> int:
        """0 normalises each column over its rows, 1 each row over its columns."""
        features_are_rows = columns
        return (0 if features_are_rows else 1) if self.over_features else (1 if features_are_rows else 0)

    def check(self, net: "Network", layer: int, below) -> None:
        count = below if self.over_features else net.batch
        what = "its width" if self.over_features else "the batch"
        if count.is_Integer and int(count) < 2:
            raise SpecError(f"layer {layer}: {self.kind} normalises over {what}, which is 1: every x̂ would be 0; "
                            f"it needs at least 2")

    def append(self, b: Builder, layer: int, below):
        axis = self.axis(b.columns)
        rows, cols = below.shape
        count = below.shape[axis]
        ones = OneMatrix(1, rows) * below if axis == 0 else below * OneMatrix(cols, 1)
        mean = b.define(naming.layered("mu", layer), ones / count, "statistic", layer)
        deviation = b.define(naming.layered("sigma", layer), Deviation(below, mean, axis, _epsilon(self.eps)),
                             "statistic", layer)
        xhat = b.define(naming.layered("xhat", layer), Normalize(below, mean, deviation, axis), "intermediate",
                        layer, named=True)
        gamma, beta = b.parameter(naming.layered("gamma", layer)), b.parameter(naming.layered("beta", layer))
        # γ ⊙ x̂ + β, in the order the papers write it (SymPy would sort β first)
        return MatAdd(hadamard(spread(gamma, xhat.shape), xhat), spread(beta, xhat.shape), evaluate=False)

    def label(self) -> str:
        return self.kind


@dataclass(frozen=True)
class LayerNorm(_Normalization):
    """Layer normalisation: each sample normalised over its features, x̂ = (x − μ) ⊘ σ with the biased
    variance (1/N, as PyTorch) and σ = √(σ² + ε), then a = γ ⊙ x̂ + β; parameters ``gamma{l}``,
    ``beta{l}``, one entry per feature, shaped like a bias (n×1 in columns, 1×n in rows)."""

    kind = "layernorm"
    over_features = True


@dataclass(frozen=True)
class BatchNorm(_Normalization):
    """Batch normalisation in training mode: each feature normalised over the batch with the batch's own
    statistics, then a = γ ⊙ x̂ + β; parameters ``gamma{l}``, ``beta{l}`` as for :class:`LayerNorm`."""

    kind = "batchnorm"
    over_features = False


def _positive_size(value, what: str):
    from .network import _size

    return _size(value, what)


@dataclass(frozen=True)
class Attention:
    """Single-head scaled dot-product self-attention, no biases, the tokens along the batch axis.

    Rows layout (X is T×n): Q = X W_Q, K = X W_K, V = X W_V (each T×d_k),
    S = τ Q Kᵀ with τ = 1/√d_k, P = softmax of each row of S, O = P V, output
    O W_O (T×n).  Columns layout: the transpose of every line.  ``causal``
    lets token t attend only to tokens ≤ t.  Parameters ``WQ{l}``, ``WK{l}``,
    ``WV{l}`` (n → d_k) and ``WO{l}`` (d_k → n), shaped as dense weights are.
    """

    d_k: int | str
    causal: bool = False
    skip_from: int | None = None

    kind = "attention"
    tied_to = None
    bias = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "d_k", _positive_size(self.d_k, "attention d_k"))
        if not isinstance(self.causal, bool):
            raise SpecError(f"causal must be true or false, not {self.causal!r}")
        _check_skip(self.skip_from)

    def output_width(self, below):
        return below

    def parameter_specs(self, layer: int, below, columns: bool) -> dict:
        fan_in = 1 if columns else 0
        specs = {naming.layered(kind, layer): (_weight_shape(columns, below, self.d_k), "weight", fan_in)
                 for kind in ("WQ", "WK", "WV")}
        specs[naming.layered("WO", layer)] = (_weight_shape(columns, self.d_k, below), "weight", fan_in)
        return specs

    def check(self, net: "Network", layer: int, below) -> None:
        if self.causal and net.batch == 1:
            raise SpecError(f"layer {layer}: causal attention over a batch of 1 token attends to itself only; "
                            f"give the tokens as the batch (batch = T)")

    @property
    def scale(self):
        """τ = 1/√d_k."""
        return 1 / sympy.sqrt(self.d_k)

    def append(self, b: Builder, layer: int, below):
        p = {kind: b.parameter(naming.layered(kind, layer)) for kind in ("WQ", "WK", "WV", "WO")}
        if b.columns:
            project = {kind: p[f"W{kind}"] * below for kind in "QKV"}
        else:
            project = {kind: below * p[f"W{kind}"] for kind in "QKV"}
        Q, K, V = (b.define(naming.layered(kind, layer), project[kind], "intermediate", layer, named=True)
                   for kind in "QKV")
        tau = Constant(naming.layered("tau", layer), self.scale)
        scores = tau * (K.T * Q if b.columns else Q * K.T)
        S = b.define(naming.layered("S", layer), scores, "intermediate", layer, named=True)
        P = b.define(naming.layered("P", layer), Softmax(S, 0 if b.columns else 1, self.causal), "intermediate",
                     layer, named=True)
        O = b.define(naming.layered("O", layer), V * P if b.columns else P * V, "intermediate", layer, named=True)
        return p["WO"] * O if b.columns else O * p["WO"]

    def label(self) -> str:
        return "causal attention" if self.causal else "attention"


@dataclass(frozen=True)
class Embedding:
    """An embedding: the first layer, reading one-hot columns (rows layout: rows) of X, a = E X
    (rows: X E) with the parameter ``E{l}`` (dim×vocab in columns, vocab×dim in rows).  Generated code
    also takes X as integer ids, and then gathers columns (rows) of E and scatter-adds the gradient."""

    vocab: int | str
    dim: int | str

    kind = "embedding"
    tied_to = None
    skip_from = None
    bias = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocab", _positive_size(self.vocab, "embedding vocab"))
        object.__setattr__(self, "dim", _positive_size(self.dim, "embedding dim"))

    def output_width(self, below):
        return self.dim

    def parameter_specs(self, layer: int, below, columns: bool) -> dict:
        return {naming.layered("E", layer): (_weight_shape(columns, self.vocab, self.dim), "weight",
                                             1 if columns else 0)}

    def check(self, net: "Network", layer: int, below) -> None:
        if layer != 1:
            raise SpecError(f"layer {layer}: an embedding reads the one-hot input X, so it must be layer 1")
        if below != self.vocab:
            raise SpecError(f"layer {layer}: the embedding's vocab is {self.vocab} but the network's inputs are "
                            f"{below} wide; one-hot inputs have one entry per word (set inputs = {self.vocab})")

    def append(self, b: Builder, layer: int, below):
        E = b.parameter(naming.layered("E", layer))
        return E * below if b.columns else below * E

    def label(self) -> str:
        return "embedding"


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout: a = M ⊙ x / (1 − p) with a 0/1 mask input ``M{l}`` shaped like x; no parameters.
    Training draws the mask from a seeded generator each step; generated code given no mask passes x
    through (evaluation mode)."""

    p: float

    kind = "dropout"
    tied_to = None
    skip_from = None
    bias = False

    def __post_init__(self) -> None:
        if isinstance(self.p, bool) or not isinstance(self.p, (int, float)) or not 0 <= float(self.p) < 1:
            raise SpecError(f"dropout p is the probability of dropping an entry, from 0 up to (not including) 1; "
                            f"given {self.p!r}")

    @property
    def keep(self) -> sympy.Rational:
        """1 − p, exactly as written."""
        return 1 - sympy.Rational(Fraction(str(self.p)))

    def output_width(self, below):
        return below

    def parameter_specs(self, layer: int, below, columns: bool) -> dict:
        return {}

    def check(self, net: "Network", layer: int, below) -> None:
        pass

    def append(self, b: Builder, layer: int, below):
        mask = b.add_input(naming.layered("M", layer), below.shape, "mask", layer, rate=float(self.p))
        return hadamard(mask, below) / self.keep if self.keep != 1 else hadamard(mask, below)

    def label(self) -> str:
        return f"dropout {self.p:g}"


#: the layer kinds a spec's ``kind = "..."`` names, besides ``"dense"``
KINDS = {"layernorm": LayerNorm, "batchnorm": BatchNorm, "attention": Attention, "embedding": Embedding,
         "dropout": Dropout}

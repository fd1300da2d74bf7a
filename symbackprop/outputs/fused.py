"""The NumPy module's ``step_inplace``: a workspace of buffers, and weight updates fused into BLAS calls.

:class:`InPlaceStep` lowers the statement plan (:mod:`.targets.plan`) once
more, into calls that write into given arrays (``np.matmul(W1, X, out=z1)``):

* every ``z``, ``a`` and ``δ`` the updates need lives in a buffer of a
  *workspace*, allocated on the first call for a (shapes, dtypes) signature
  and reused by every later call; a buffer whose last reader has run is taken
  over by the next quantity of its shape (``a1 = σ(z1)`` is written over
  ``z1``), and each statement's intermediate values go to a few scratch
  buffers of the workspace;
* every product, and each parameter's update in its own memory, is a call
  of the BLAS NumPy itself uses (its bundled OpenBLAS through ctypes, found
  on the first call; SciPy's wrappers when it cannot be found), in CBLAS
  row-major form with arrays given by address: ``W ← W − η δ aᵀ`` is one
  GEMM with β = 1 (one GER for one sample), ``b ← b − η δ 1`` one GEMV, and
  a weight decay ``c W`` in the gradient becomes β = 1 − η c.  One library
  means one pool of BLAS threads: a second one (SciPy's own OpenBLAS) spins
  while NumPy's works, and on two cores a step alternating with NumPy
  products ran 5–10 times slower;
* the argument checks run once per workspace; a later call only compares
  the arrays' shapes, dtypes and flags with the workspace's signature.

Anything the lowering does not know (a custom activation, a trace, a class
another layer kind brings) is printed by the NumPy printer as usual and
copied into its buffer: correct, only not allocation-free.  A gradient that
reads another trained parameter, or none of whose terms is a product BLAS
can take, is computed into a buffer and copied in after the fused updates,
so every update still reads the parameters as they were.  Arrays the fast
path cannot take (mixed dtypes, parameters that are not C-contiguous, no
BLAS found) go through the plain ``step``, copied into the caller's arrays;
data that are not C-contiguous are copied once per call.

Every parameter is written only after every check has passed and every
``z``, ``a`` and ``δ`` is computed: a step that fails (a bad shape, a target
that is not a distribution, an overflow NumPy reports under
``np.errstate(over="raise")``) leaves the caller's arrays as they were.  BLAS
calls report no overflow: there they write ``inf``, as PyTorch's ``addmm_`` does.
"""

from __future__ import annotations

import heapq
import inspect

import sympy
from sympy import HadamardPower, HadamardProduct, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose, ZeroMatrix

from ..calculus import inplace
from ..calculus.expressions import Broadcast, Deviation, Elementwise, Named, Normalize, Softmax
from ..model.activations import MATH_FUNCTIONS
from ..printing.numpy import is_negative_term, registered_activation, scaled

__all__ = ["InPlaceStep", "WORKSPACE_NAMES"]

#: (runtime name, derivative order) → the in-place helper and the scratch it takes ("t": an array like its input)
HELPERS = {
    ("sigmoid", 0): ("sigmoid_into", ()),
    ("sigmoid", 1): ("sigmoid_grad_into", ("t",)),
    ("tanh", 1): ("tanh_grad_into", ()),
    ("relu", 0): ("relu_into", ()),
    ("relu", 1): ("relu_grad_into", ()),
    ("leaky_relu", 0): ("leaky_relu_into", ("t",)),
    ("leaky_relu", 1): ("leaky_relu_grad_into", ()),
    ("softplus", 0): ("softplus_into", ("t",)),
    ("softplus", 1): ("sigmoid_into", ()),
}
#: runtime functions that are NumPy ufuncs of the same name at order 0
UFUNCS = {"tanh", *MATH_FUNCTIONS}

#: names the in-place step defines besides the quantities (``_t1``, ``_ones_m``, ``_new_W1``, … start with these)
WORKSPACE_NAMES = ("_gemm", "_ger", "_gemv", "_axpy", "_ysum", "_t", "_ones_", "_new_", "_p_", "_s", "_c", "_later", "_WORKSPACES",
                   "_WORKSPACE", "_SIZES", "_BLAS", "_blas", "_address_of", "_new_workspace", "_commit",
                   "_distributions_into", "_thread_id", "w", "key")

_LR = sympy.Symbol("lr", positive=True)
#: what is read as it is printed, never computed into a buffer of its own
_LEAVES = (Named, MatrixSymbol, sympy.Symbol, Transpose, Broadcast, OneMatrix, ZeroMatrix)


def helper_sources(names) -> list[str]:
    """The source of the in-place helpers ``names`` and those they call, in :mod:`~..calculus.inplace`'s order."""
    defined = [name for name, value in vars(inplace).items() if inspect.isfunction(value)]
    wanted = set(names)
    for name in list(wanted):
        wanted.update(n for n in defined if n != name and f"{n}(" in inspect.getsource(getattr(inplace, name)))
    return [inspect.getsource(getattr(inplace, name)).rstrip("\n") for name in defined if name in wanted]


def _transpose(factor):
    return factor.arg if isinstance(factor, Transpose) else Transpose(factor)


class InPlaceStep:
    """The body of ``step_inplace`` and the workspace it needs, lowered from a code generator's plan."""

    def __init__(self, generator) -> None:
        self.g = generator
        self.printer = generator.printer
        self.spec: list[tuple[str, str, tuple]] = []  # workspace entries: (kind, slot, shape)
        self.entries: list[str] = []  # the variable each entry binds, in the same order
        self.bound: set[str] = set()
        self.dimensions: dict = {}  # a symbolic size → its printed name
        self.helpers: dict[str, None] = {}
        self.reads: dict[str, None] = {}  # every name and scalar symbol the code reads
        self.pool: dict[tuple, list[str]] = {}  # shape → scratch buffers
        self.busy: set[str] = set()
        self.array_symbols: set[str] = set()  # stored outputs a, read through a scalar symbol in σ' = a(1 − a)
        self.alias: dict[str, frozenset[str]] = {}  # quantity → the arrays it is a view of
        self.views: dict[str, tuple] = {}  # a quantity that is a view → (the array node it views, transposed)
        self.buffer_slot: dict[str, str] = {}  # a name bound to a workspace array → its buffer
        self.call_addresses: dict[str, None] = {}  # parameters and data BLAS reads: addresses taken per call
        self.scalar_holders: dict[str, str] = {}  # a call's alpha or beta made of lr → its holder, set per call
        self.call_sites: list[str] = []  # the argument tuples of the BLAS calls, in order
        self.masks: dict[tuple, str] = {}  # (axis, shape) → a causal softmax's mask in the workspace
        self.lines: list[str] = []

    # --- the workspace -------------------------------------------------------------------

    def _entry(self, kind: str, slot: str, shape: tuple, name: str | None = None) -> str:
        name = name or slot
        if name not in self.bound:
            self.bound.add(name)
            if kind in ("float", "ones", "fixed"):
                self.buffer_slot[name] = slot
            self.spec.append((kind, slot, shape))
            self.entries.append(name)
        return name

    def _shape(self, shape) -> tuple:
        out = []
        for d in shape:
            if d.is_Integer:
                out.append(int(d))
            else:
                if d not in self.dimensions:
                    self.dimensions[d] = self.printer.doprint(d)
                self.reads[self.dimensions[d]] = None
                out.append(self.dimensions[d])
        return tuple(out)

    def _scratch(self, shape) -> str:
        """A scratch buffer of ``shape`` no node being lowered holds (released when its statement ends)."""
        key = self._shape(shape)
        buffers = self.pool.setdefault(key, [])
        for name in buffers:
            if name not in self.busy:
                break
        else:
            name = f"_t{sum(map(len, self.pool.values())) + 1}"
            buffers.append(name)
            self._entry("float", name, key)
        self.busy.add(name)
        return name

    # --- leaves: names, views and scalars, printed -----------------------------------------

    def _is_array(self, node) -> bool:
        if getattr(node, "is_Matrix", False):
            return True
        return any(s.name in self.array_symbols for s in getattr(node, "free_symbols", ()))

    def _print(self, node, full: bool = False) -> str:
        printer = self.printer
        printer.names.clear()
        printer.symbols.clear()
        text = printer.full(node) if full else printer.doprint(node)
        self.reads.update(dict.fromkeys(printer.names))
        self.reads.update(dict.fromkeys(printer.symbols))
        self.g.scalars.update(printer.symbols)
        return text

    def _is_leaf(self, node) -> bool:
        """Whether :meth:`_leaf` gives ``node`` an operand, without printing it."""
        return not self._is_array(node) or isinstance(node, _LEAVES) or self._kind(node)[0] == "opaque"

    def _leaf(self, node, full: bool = False) -> str | None:
        """The operand that stands for ``node`` without computing it, or None when it must be computed."""
        if not self._is_array(node):
            return self._print(node)
        if isinstance(node, sympy.Symbol):  # a stored output read through σ' = a(1 − a)
            self.reads[node.name] = None
            return node.name
        if isinstance(node, (Named, MatrixSymbol)) or (
                isinstance(node, Transpose) and isinstance(node.arg, (Named, MatrixSymbol))):
            return self._print(node)
        if isinstance(node, (Broadcast, OneMatrix, ZeroMatrix)) and (
                not isinstance(node, Broadcast) or isinstance(node.vector, (Named, MatrixSymbol))):
            return self._print(node, full)
        if isinstance(node, _LEAVES):  # a broadcast of a computed vector, a transposed product: as printed
            return self._print(node, full=True)
        if self._kind(node)[0] == "opaque":
            return self._print(node, full=True)
        return None

    # --- interior nodes ------------------------------------------------------------------

    def _kind(self, node):
        """What computing ``node`` into a buffer takes: (kind, data); kinds are those of :meth:`_emit`.

        Only the classes named here, exactly, are lowered; a subclass, or a variant with a setting this
        does not know, is printed by the NumPy printer and copied in ("opaque").
        """
        while True:
            if isinstance(node, Elementwise) and type(node) is not Elementwise:
                return "opaque", (node,)
            if isinstance(node, Elementwise):
                entry = registered_activation(node)
                if entry is not None and entry.name == "identity" and node.order == 0:
                    node = node.arg
                    continue
                output = self.printer._output_form(node)
                if output is not None:  # σ'(z) through the stored a = σ(z)
                    self.array_symbols.add(self.printer._settings["outputs"][node.arg].name)
                    node = output
                    continue
                if entry is not None and (entry.runtime, node.order) in HELPERS:
                    return "helper", (node, node.arg, *HELPERS[entry.runtime, node.order])
                if node.order == 0 and ((entry is not None and entry.runtime in UFUNCS)
                                        or (entry is None and self.printer._numpy_function(node))):
                    name = entry.runtime if entry is not None else self.printer._numpy_function(node)[3:]
                    return "ufunc", (node, node.arg, name)
                return "opaque", (node,)
            if isinstance(node, Softmax):
                if type(node) is not Softmax:
                    return "opaque", (node,)
                return ("causal_softmax" if node.causal else "softmax"), (node, node.arg)
            if type(node) is Normalize:  # x̂ = (x − μ) ⊘ σ
                return "normalize", (node,)
            if type(node) is Deviation:  # σ = √(mean (x − μ)^∘2 + ε)
                return "deviation", (node,)
            if isinstance(node, MatMul):
                coefficient, factors = self.printer._matmul_parts(node)
                if len(factors) == 1:
                    if coefficient == 1:
                        node = factors[0]
                        continue
                    return "mul", (node, coefficient, factors)
                left, right = isinstance(factors[0], OneMatrix), isinstance(factors[-1], OneMatrix)
                if (left or right) and len(factors) - left - right == 1:
                    axis = "(0, 1)" if left and right else "0" if left else "1"
                    return "sum", (node, coefficient, factors[int(left)], axis)
                if len(factors) == 2 and not (left or right):
                    return "matmul", (node, coefficient, factors)
                return "opaque", (node,)
            if isinstance(node, (MatAdd, sympy.Add)):
                return "add", (node,)
            if isinstance(node, HadamardProduct):
                return "mul", (node, sympy.Integer(1), list(node.args))
            if isinstance(node, sympy.Mul) and self._is_array(node):
                scalars = [a for a in node.args if not self._is_array(a)]
                return "mul", (node, sympy.Mul(*scalars), [a for a in node.args if self._is_array(a)])
            if isinstance(node, (HadamardPower, sympy.Pow)) and self._is_array(node) and node.args[1].is_number:
                return "pow", (node, node.args[0], node.args[1])
            if not self._is_array(node) or isinstance(node, _LEAVES):
                return "leaf", (node,)
            return "opaque", (node,)  # printed as NumPy code, then copied: a class this lowering lacks

    def lower(self, expr, dest: str, first: str | None = None) -> None:
        """Lines that compute ``expr`` into the buffer ``dest``; ``first``: a name dest may alias, read first.

        An explicit stack, not recursion: a node is planned (which children are
        operands, which are computed, into dest or a scratch buffer), its
        children are lowered, then the node's own calls are written.  A scalar
        node (inside σ' = a(1 − a)) has the shape of the matrix node it sits in.
        """
        stack: list = [(expr, dest, None, expr.shape)]
        while stack:
            node, out, planned, shape = stack.pop()
            if planned is not None:
                self._emit(planned, out)
                continue
            kind, data = self._kind(node)
            if kind == "leaf" or (kind == "opaque" and node is expr):
                self.lines.append(f"np.copyto({out}, {self._leaf(data[0], full=True)})")
                continue
            children, plan = self._plan(kind, data, out, shape, first if node is expr else None)
            stack.append((node, out, plan, shape))
            stack.extend(reversed(children))

    def _value(self, node, out: str, shape, computed: list, into_out: bool, full: bool = False):
        """An operand for ``node``: a leaf's text (of its whole shape if ``full``; else NumPy broadcasts
        it), or a buffer (``out`` or a scratch one) it is computed into."""
        leaf = self._leaf(node, full)
        if leaf is not None:
            return leaf, False
        own = node.shape if getattr(node, "is_Matrix", False) else shape
        target = out if into_out else self._scratch(own)
        computed.append((node, target, None, own))
        return target, True

    def _plan(self, kind, data, out, shape, first):
        computed: list = []
        node = data[0]
        if kind == "matmul":
            _, coefficient, (a, b) = data
            operator = "np.multiply" if self.printer.product_operator(a) == "*" else "np.matmul"
            values, operands = [], []
            for factor in (a, b):
                value, was_computed = self._value(factor, out, shape, computed, False, True)
                values.append(value)
                operands.append((value, False, self._shape(factor.shape)) if was_computed
                                else self._simple(factor))
            return computed, ("matmul", operator, values, coefficient, operands, node.shape)
        if kind == "sum":
            _, coefficient, inner, axis = data
            narrow = None
            if not self.printer.is_full(node):  # 1 1ᵀ M: the sums are spread over the rows by broadcasting
                rows, cols = node.shape
                narrow = self._scratch((sympy.Integer(1), cols) if axis == "0" else (rows, sympy.Integer(1))
                                       if axis == "1" else (sympy.Integer(1), sympy.Integer(1)))
            value = self._value(inner, out, shape, computed, False, True)[0]
            return computed, ("sum", value, axis, coefficient, narrow)
        if kind in ("add", "mul"):
            products = []
            if kind == "add":
                # a bias spread over the batch: copied into out, the product added by GEMM, since a
                # broadcasting ufunc allocates an iteration buffer; with nothing to spread, matmul and add
                narrow = any(not self.printer.is_full(term) for term in node.args)
                items = []
                for term in node.args:
                    negative = bool(is_negative_term(term))
                    item = scaled(-1, term) if negative and term.is_Matrix else -term if negative else term
                    product = self._product(item) if narrow else None
                    if product is not None:  # accumulated into out by GEMM (β = 1): no broadcast pass
                        products.append((negative, product))
                    else:
                        items.append((item, negative))
                coefficient = sympy.Integer(1)
                if not items:
                    negative, (c, a, b, operator) = products.pop(0)
                    head = ("matmul", operator, [a, b], -c if negative else c,
                            [self._simple(f) for f in operator[1]], node.shape)
                    return computed, ("products", head, None, products)
            else:
                coefficient, items = data[1], [(factor, False) for factor in data[2]]
            # computed operands first (the first of them into out), then leaves; ``first`` leads the leaves
            items.sort(key=lambda item: (self._is_leaf(item[0]),
                                         not (first is not None and not item[1] and
                                              isinstance(item[0], (Named, MatrixSymbol)) and item[0].name == first)))
            values = []
            for index, (item, negative) in enumerate(items):
                value, was_computed = self._value(item, out, shape, computed, index == 0)
                values.append((value, negative, was_computed))
            if products:
                return computed, ("products", None, (kind, values, coefficient), products)
            return computed, (kind, values, coefficient)
        if kind == "pow":
            _, base, exponent = data
            return computed, ("pow", self._value(base, out, shape, computed, True)[0], exponent)
        if kind == "normalize":
            # the statistics are spread into full buffers (np.copyto) before use: a broadcasting ufunc
            # allocates an iteration buffer, a spreading copy does not
            x = self._value(node.arg, out, shape, computed, True, True)[0]
            mean = self._value(node.mean, out, shape, computed, False)[0]
            deviation = self._value(node.deviation, out, shape, computed, False)[0]
            spread = self._scratch(node.shape)
            return computed, ("lines", [f"np.copyto({spread}, {mean})", f"np.subtract({x}, {spread}, out={out})",
                                        f"np.copyto({spread}, {deviation})",
                                        f"np.divide({out}, {spread}, out={out})"])
        if kind == "deviation":
            x = self._value(node.arg, out, shape, computed, False, True)[0]
            mean = self._value(node.mean, out, shape, computed, False)[0]
            centred = self._scratch(node.arg.shape)
            count = self._print(node.count)
            epsilon = repr(float(node.epsilon)) if node.epsilon.is_number else self._print(node.epsilon)
            return computed, ("lines", [f"np.copyto({centred}, {mean})", f"np.subtract({x}, {centred}, out={centred})",
                                        f"np.multiply({centred}, {centred}, out={centred})",
                                        f"np.sum({centred}, axis={node.axis}, keepdims=True, out={out})",
                                        f"np.divide({out}, {count}, out={out})",
                                        f"np.add({out}, {epsilon}, out={out})", f"np.sqrt({out}, out={out})"])
        if kind in ("helper", "ufunc", "softmax", "causal_softmax"):
            value = self._value(data[1], out, shape, computed, True)[0]
            if kind in ("softmax", "causal_softmax"):
                rows, cols = node.shape
                reduction = self._scratch((sympy.Integer(1), cols) if node.axis == 0 else (rows, sympy.Integer(1)))
                if kind == "causal_softmax":  # the entries after the diagonal, a boolean array of the workspace
                    key = (node.axis, self._shape(node.shape))
                    later = self.masks.setdefault(key, f"_later{len(self.masks) + 1}")
                    self._entry("later", str(node.axis), key[1], later)
                    return computed, ("call", f"causal_softmax_into({value}, {out}, {reduction}, {node.axis}, "
                                              f"{later})", "causal_softmax_into")
                return computed, ("call", f"softmax_into({value}, {out}, {reduction}, {node.axis})", "softmax_into")
            if kind == "ufunc":
                return computed, ("call", f"np.{data[2]}({value}, out={out})", None)
            helper, scratch = data[2], data[3]
            extra = "".join(f", {self._scratch(shape)}" for _ in scratch)
            return computed, ("call", f"{helper}({value}, {out}{extra})", helper)
        raise AssertionError(kind)

    def _product(self, node):
        """(c, A, B, operator) for ``c A B`` with A and B names or transposed names (what GEMM reads), else None."""
        if not isinstance(node, MatMul):
            return None
        coefficient, factors = self.printer._matmul_parts(node)
        if len(factors) != 2 or any(isinstance(f, OneMatrix) or self._simple(f) is None for f in factors):
            return None
        operator = "np.multiply" if self.printer.product_operator(factors[0]) == "*" else "np.matmul"
        return coefficient, self._print(factors[0]), self._print(factors[1]), (operator, factors)

    def _accumulate(self, out: str, alpha, factors) -> None:
        """out ← out + α A B by GEMM on out's memory."""
        a, b = (self._simple(f) for f in factors)
        shape = (factors[0].shape[0], factors[1].shape[1])
        self.lines.append(self._call(self._gemm(alpha, a, b, sympy.S.One, out, shape)))

    def _product_into(self, out: str, coefficient, operands, shape, beta) -> None:
        """out ← c A B by the step's BLAS, as every other product of the step.  A result of one column (or
        row) is a GEMV, which BLAS runs as fast as NumPy's matmul (a GEMM with one column ran 3–15× slower)."""
        a, b = operands
        if shape[1] == 1:  # out = op(A) b
            self.lines.append(self._call(self._gemv(coefficient, a, a[1], b[0], beta, out)))
        elif shape[0] == 1:  # out = a op(B): outᵀ = op(B)ᵀ aᵀ
            self.lines.append(self._call(self._gemv(coefficient, b, not b[1], a[0], beta, out)))
        else:
            self.lines.append(self._call(self._gemm(coefficient, a, b, beta, out, shape)))

    def _scale(self, out: str, coefficient) -> None:
        if coefficient == 1:
            return
        if coefficient == -1:
            self.lines.append(f"np.negative({out}, out={out})")
        else:
            self.lines.append(f"np.multiply({out}, {self._print(coefficient)}, out={out})")

    def _emit(self, plan, out: str) -> None:
        kind = plan[0]
        if kind == "matmul":
            _, operator, (a, b), coefficient, operands, shape = plan
            if operator == "np.matmul" and None not in operands:
                self._product_into(out, coefficient, operands, shape, sympy.S.Zero)
            else:
                self.lines.append(f"{operator}({a}, {b}, out={out})")
                self._scale(out, coefficient)
        elif kind == "sum":
            _, value, axis, coefficient, narrow = plan
            self.lines.append(f"np.sum({value}, axis={axis}, keepdims=True, out={narrow or out})")
            self._scale(narrow or out, coefficient)
            if narrow:
                self.lines.append(f"np.copyto({out}, {narrow})")
        elif kind == "products":
            _, head, rest, products = plan
            if head is not None:
                _, (operator, factors), (a, b), coefficient, operands, shape = head
                self._emit(("matmul", operator, (a, b), coefficient, operands, shape), out)
            else:
                self._emit(rest, out)
            for negative, (coefficient, _, _, (_, factors)) in products:
                self._accumulate(out, -coefficient if negative else coefficient, factors)
        elif kind in ("add", "mul"):
            _, values, coefficient = plan
            combine = "np.add" if kind == "add" else "np.multiply"
            if values[0][2]:  # the first operand is already in out
                rest = values[1:]
                if values[0][1]:  # − out: 1 − a² as one subtraction when a positive leaf follows
                    positive = next((v for v in rest if not v[1] and not v[2]), None) if kind == "add" else None
                    if positive is not None:
                        self.lines.append(f"np.subtract({positive[0]}, {out}, out={out})")
                        rest = [v for v in rest if v is not positive]
                    else:
                        self.lines.append(f"np.negative({out}, out={out})")
            elif len(values) == 1:
                self.lines.append(f"np.copyto({out}, {values[0][0]})")
                rest = []
            else:
                # leaves only: the first positive one and the next make out
                head = next((i for i, v in enumerate(values) if not v[1]), 0)
                values = [values[head]] + values[:head] + values[head + 1:]
                if values[0][1]:  # every term negative: −(u + v + …)
                    self.lines.append(f"np.negative({values[0][0]}, out={out})")
                    rest = values[1:]
                else:
                    function = "np.subtract" if values[1][1] else combine
                    self.lines.append(f"{function}({values[0][0]}, {values[1][0]}, out={out})")
                    rest = values[2:]
            for value, negative, _ in rest:
                self.lines.append(f"{'np.subtract' if negative else combine}({out}, {value}, out={out})")
            self._scale(out, coefficient)
        elif kind == "pow":
            _, base, exponent = plan
            if exponent == 2:
                self.lines.append(f"np.multiply({base}, {base}, out={out})")
            elif exponent == -1:
                self.lines.append(f"np.divide(1, {base}, out={out})")
            else:
                self.lines.append(f"np.power({base}, {self._print(exponent)}, out={out})")
        elif kind == "lines":
            self.lines.extend(plan[1])
        elif kind == "call":
            self.lines.append(plan[1])
            if plan[2]:
                self.helpers[plan[2]] = None

    # --- the statements --------------------------------------------------------------------

    def _resolved(self, names) -> set[str]:
        """The arrays ``names`` stand for, through quantities that are views of others (``a1 = z1``)."""
        out: set[str] = set()
        for name in names:
            out |= self.alias.get(name, {name})
        return out

    @staticmethod
    def _is_view(expr) -> bool:
        while isinstance(expr, Elementwise):
            entry = registered_activation(expr)
            if entry is None or entry.name != "identity" or expr.order != 0:
                return False
            expr = expr.arg
        if isinstance(expr, Transpose):
            expr = expr.arg
        return isinstance(expr, (Named, MatrixSymbol))

    def _in_place_operand(self, expr) -> str | None:
        """The quantity ``expr``'s buffer may be written over while it is read: σ(z) over z, a − Y over a."""
        if type(expr) in (Elementwise, Softmax) and isinstance(expr.arg, Named):
            kind = self._kind(expr)[0]
            return expr.arg.name if kind in ("helper", "ufunc", "softmax", "causal_softmax") else None
        if isinstance(expr, MatAdd) and all(isinstance(t, (Named, MatrixSymbol, Broadcast)) or (
                is_negative_term(t) and isinstance(scaled(-1, t), (Named, MatrixSymbol, Broadcast)))
                for t in expr.args):
            positive = [t.name for t in expr.args if isinstance(t, Named)]
            return positive[0] if positive else None
        return None

    def _buffer(self, name: str, expr, index: int, last_use: dict[str, int]) -> tuple[str, str | None]:
        """The buffer for quantity ``name`` at statement ``index``: a dead one of its shape, or a new one.

        Each buffer remembers when its last reader runs and which quantity that reader reads (None when
        several end there); the buffers of a shape wait in a heap by that time, so a deep network's
        thousands of live buffers are not walked for every quantity.
        """
        shape = self._shape(expr.shape)
        operand = self._in_place_operand(expr)
        ends_here = last_use.get(name, -1)
        heap = self.free.setdefault(shape, [])
        slot, in_place = None, None
        if operand is not None and self.slots.get(self.slot_of.get(operand)) == (index, operand):
            slot, in_place = self.slot_of[operand], operand  # written over the operand it reads last
        else:
            while heap and self.slots[heap[0][1]][0] != heap[0][0]:
                heapq.heappop(heap)  # a stale entry: that buffer was taken since
            if heap and heap[0][0] < index:
                slot = heapq.heappop(heap)[1]
        if slot is None:
            slot = name
        self.slots[slot] = (ends_here, name)
        self.slot_of[name] = slot
        heapq.heappush(heap, (ends_here, slot))
        return slot, in_place

    def build(self):
        """Lower the plan: the body lines of the fast path, after the workspace is unpacked."""
        g = self.g
        self.slots: dict[str, tuple[int, str]] = {}  # buffer → (when its last reader runs, the quantity in it)
        self.slot_of: dict[str, str] = {}  # quantity → its buffer
        self.free: dict[tuple, list] = {}  # shape → heap of (when its last reader runs, buffer)
        update_reads = []
        for gradient in g.d.gradients.values():
            update_reads += [*g.print(gradient)[1]]
        needed = {id(s) for s in g.needed(update_reads)}
        quantities = [(q, s) for q, s in zip(g.plan.quantities, g.statements) if id(s) in needed]
        n = len(quantities)
        last_use: dict[str, int] = {}
        for index, (_, statement) in enumerate(quantities):
            for name in statement.reads:
                last_use[name] = index
        for name in update_reads:
            last_use[name] = n
        # a quantity that is a view of others keeps them alive as long as it is read
        for index, (q, statement) in enumerate(quantities):
            if self._is_view(q.expr):
                for name in statement.reads:
                    last_use[name] = max(last_use.get(name, index), last_use.get(q.target, index))
        for index, (q, statement) in enumerate(quantities):
            self.busy.clear()
            if q.kind == "fixed":
                self._entry("fixed", q.target, self._shape(q.expr.shape))
                continue
            if self._is_view(q.expr):
                self.lines.append(f"{q.target} = {self._print(q.expr, full=True)}")
                self.alias[q.target] = frozenset(self._resolved(self.printer.names))
                base = q.expr
                while isinstance(base, Elementwise):
                    base = base.arg
                self.views[q.target] = (base.arg, True) if isinstance(base, Transpose) else (base, False)
                continue
            slot, first = self._buffer(q.target, q.expr, index, last_use)
            self._entry("float", slot, self._shape(q.expr.shape), q.target)
            self.lower(q.expr, q.target, first)
        self.busy.clear()
        self._updates()
        # what changes from call to call in the BLAS calls' arguments, set once: the addresses of the
        # parameters and the data they read (data C-ordered first), and the scalars made of lr
        head = []
        for name in self.call_addresses:
            if name not in self.g.params:  # BLAS reads it as a C-ordered, aligned array
                head.append(f"if not ({name}.flags.c_contiguous and {name}.flags.aligned):")
                head.append(f"    {name} = {name}.copy(order='C')")
            head.append(f"_p_{name}.value = _address_of({name})")
        head += [f"{holder}.value = {text}" for text, holder in self.scalar_holders.items()]
        self.lines[:0] = head
        return self.lines

    # --- the updates -------------------------------------------------------------------------

    def _simple(self, factor):
        """(the array's name, whether it is transposed, the array's shape) for a factor BLAS takes as it
        is, else None; a quantity that is a view (``a = z`` under the identity) stands for what it views."""
        transposed = isinstance(factor, Transpose)
        base = factor.arg if transposed else factor
        if not isinstance(base, (Named, MatrixSymbol)):
            return None
        name = self._print(base)
        while name in self.views:
            base, flipped = self.views[name]
            transposed ^= flipped
            name = self._print(base)
        return name, transposed, self._shape(base.shape)

    # --- BLAS calls: CBLAS row-major arguments, made once per workspace --------------------------
    #
    # A call is written ``_gemm(*_c3)``: ``_c3`` is the tuple of its arguments, made when the workspace
    # is made (ctypes objects for NumPy's OpenBLAS, so a call converts nothing: half the cost of a
    # ctypes call that converts its arguments).  In ``_WORKSPACE`` each argument is a pair: ("e", n) a
    # CBLAS constant (101 row-major, 111 the matrix, 112 its transpose), ("i", n) a size, ("r", x) a
    # number, ("b", buffer) a workspace buffer, ("h", name) a parameter or data array whose address each
    # call sets in ``_p_name``, ("s", holder) a scalar of lr each call sets in ``_sN``.

    def _array(self, name: str) -> tuple:
        if name in self.buffer_slot:
            return ("b", self.buffer_slot[name])
        self.call_addresses[name] = None
        self._entry("address", "address", (), "_address_of")
        self._entry("holder", name, (), f"_p_{name}")
        return ("h", name)

    def _real(self, value) -> tuple:
        if value.is_number:
            return ("r", float(value))
        text = self._print(value)
        holder = self.scalar_holders.setdefault(text, f"_s{len(self.scalar_holders) + 1}")
        self._entry("scalar", holder, (), holder)
        return ("s", holder)

    def _scaled(self, value, text: str) -> str:
        """``text`` times ``value`` as the call's comment shows it."""
        return text if value == 1 else f"{self._print(value)} * {text}"

    def _gemm(self, alpha, a, b, beta, out: str, shape) -> tuple:
        """The row-major GEMM ``out ← alpha op(a) op(b) + beta out`` (out C-ordered, of ``shape``)."""
        rows, cols = self._shape(shape)
        inner = a[2][0] if a[1] else a[2][1]
        args = [("e", 101), ("e", 112 if a[1] else 111), ("e", 112 if b[1] else 111), ("i", rows), ("i", cols),
                ("i", inner), alpha, self._array(a[0]), ("i", a[2][1]), self._array(b[0]), ("i", b[2][1]), beta,
                self._array(out), ("i", cols)]
        product = self._scaled(alpha, f"{a[0]}{'.T' if a[1] else ''} @ {b[0]}{'.T' if b[1] else ''}")
        return "gemm", args, out, product

    def _gemv(self, alpha, matrix, transposed: bool, vector: str, beta, out: str) -> tuple:
        """The row-major GEMV ``out ← alpha op(matrix) vector + beta out``, op the transpose when asked."""
        name, _, shape = matrix
        rows, cols = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], 1)
        args = [("e", 101), ("e", 112 if transposed else 111), ("i", rows), ("i", cols), alpha, self._array(name),
                ("i", cols), self._array(vector), ("i", 1), beta, self._array(out), ("i", 1)]
        return "gemv", args, out, self._scaled(alpha, f"{name}{'.T' if transposed else ''} @ {vector}")

    def _call(self, call, beta=None) -> str:
        """The line of a BLAS call (``beta`` for a call made with the placeholder "BETA"), with the
        formula it computes as its comment."""
        function, args, out, product = call
        if beta is not None:
            args = [beta if arg == "BETA" else arg for arg in args]
        scale = args[{"gemm": 11, "gemv": 9}[function]] if function in ("gemm", "gemv") else sympy.S.One
        args = [self._real(arg) if isinstance(arg, sympy.Basic) else arg for arg in args]
        self._entry("blas", function, (), f"_{function}")
        name = f"_c{len(self.call_sites) + 1}"
        self.call_sites.append(name)
        self._entry("call", function, tuple(args), name)
        kept = "" if scale == 0 else f" + {self._scaled(scale, out)}"
        return f"_{function}(*{name})  # {out} ← {product}{kept}"

    def _fused(self, name: str, gradient) -> list[str] | None:
        """The calls that write ``name − lr · gradient`` over ``name``, or None when BLAS cannot take a term."""
        terms = list(gradient.args) if isinstance(gradient, MatAdd) else [gradient]
        decay, calls = sympy.Integer(0), []
        for term in terms:
            if isinstance(term, Transpose) and isinstance(term.arg, MatMul):  # (A B)ᵀ = Bᵀ Aᵀ
                inner = term.arg
                scalars = [a for a in inner.args if not a.is_Matrix]
                term = MatMul(*scalars, *[_transpose(f) for f in reversed([a for a in inner.args if a.is_Matrix])])
            coefficient, factors = self.printer._matmul_parts(term) if isinstance(term, MatMul) \
                else (sympy.Integer(1), [term])
            if factors == [self.g.d.symbols[name]]:  # a weight decay c W: β = 1 − lr c
                decay += coefficient
                continue
            simple = [self._simple(f) for f in factors if not isinstance(f, OneMatrix)]
            if None in simple or any(name in self._resolved([s[0]]) for s in simple):
                return None
            alpha = -_LR * coefficient
            ones = [isinstance(f, OneMatrix) for f in factors]
            if len(factors) == 2 and not any(ones):
                a, b = simple
                if factors[0].shape[1] == 1:  # one sample: the rank-1 update W ← W + α a bᵀ
                    rows, cols = self._shape(self.g.d.symbols[name].shape)
                    args = [("e", 101), ("i", rows), ("i", cols), alpha, self._array(a[0]), ("i", 1),
                            self._array(b[0]), ("i", 1), self._array(name), ("i", cols)]
                    calls.append(("ger", args, name, self._scaled(alpha, f"{a[0]} @ {b[0]}.T")))
                else:  # W ← β W + α op(A) op(B)
                    calls.append(self._gemm(alpha, a, b, "BETA", name, self.g.d.symbols[name].shape))
            elif len(factors) == 2 and sum(ones) == 1:
                matrix, = simple
                size = factors[0].shape[0] if ones[0] else factors[1].shape[1]
                inner = factors[1] if ones[0] else factors[0]
                count = inner.shape[0] if ones[0] else inner.shape[1]
                if size != 1:
                    return None
                vector = self._entry("ones", f"_ones_{self._shape((count,))[0]}", self._shape((count,)))
                # M 1 sums M's rows (op = M itself); 1ᵀ M its columns, as Mᵀ 1
                calls.append(self._gemv(alpha, matrix, matrix[1] if ones[1] else not matrix[1], vector, "BETA",
                                        name))
            elif len(factors) == 1 and simple and (not simple[0][1] or 1 in factors[0].shape):
                # its length: the product of its sizes, multiplied out with the workspace when one is a name
                sizes = self._shape(factors[0].shape)
                length = sizes if any(isinstance(d, str) for d in sizes) else sizes[0] * sizes[1]
                args = [("i", length), alpha, self._array(simple[0][0]), ("i", 1), self._array(name), ("i", 1)]
                calls.append(("axpy", args, name, self._scaled(alpha, simple[0][0])))
            else:
                return None
        if not calls:
            return None
        beta = sympy.S.One if decay == 0 else 1 - _LR * decay
        lines = []
        if decay != 0 and calls[0][0] not in ("gemm", "gemv"):
            lines.append(f"np.multiply({name}, {self._print(beta)}, out={name})")
            beta = sympy.S.One
        for index, call in enumerate(calls):
            lines.append(self._call(call, beta if index == 0 else sympy.S.One))
        return lines

    def _updates(self) -> None:
        g = self.g
        trained = set(g.params)
        staged, fused = [], []
        for name, gradient in g.d.gradients.items():
            reads = self._resolved(g.print(gradient)[1]) - {name}
            lines = None if reads & trained else self._fused(name, gradient)
            if lines is None:
                staged.append((name, gradient))
            else:
                fused.append((name, lines))
        for name, gradient in staged:  # read the parameters before any changes
            self.busy.clear()
            work = f"_new_{name}"
            self._entry("float", work, self._shape(gradient.shape))
            self.lines.append(f"# {name} − lr ∂C/∂{name}, copied in after the updates below")
            self.lower(MatAdd(g.d.symbols[name], scaled(-_LR, gradient)), work)
        for name, lines in fused:
            self.lines.append(f"# {name} ← {name} − lr ∂C/∂{name}, in place")
            self.lines.extend(lines)
        self.lines.extend(f"np.copyto({name}, _new_{name})" for name, _ in staged)

    def constants(self) -> tuple[str, ...]:
        """The module-level constants the workspace is made from: ``_WORKSPACE`` and ``_SIZES``."""
        g = self.g
        sources: dict[str, tuple[str, int]] = {}
        arrays = [("X", g.d.symbols["X"].shape), *((name, g.d.symbols[name].shape) for name in g.params),
                  ("Y", g.d.symbols["Y"].shape)]
        for name, shape in arrays:
            for axis, size in enumerate(shape):
                if size.is_Symbol:
                    sources.setdefault(self.printer.doprint(size), (name, axis))
        used = set()
        for kind, _, shape in self.spec:  # a call's sizes are among its arguments
            used |= {d for tag, v in shape if tag == "i" for d in (v if isinstance(v, tuple) else (v,))
                     if isinstance(d, str)} if kind == "call" else {d for d in shape if isinstance(d, str)}
        lines = ["_WORKSPACE = ("]
        lines += [f"    ({kind!r}, {slot!r}, {shape!r}),  # {name}" for (kind, slot, shape), name
                  in zip(self.spec, self.entries)]
        lines.append(")")
        lines.append(f"_SIZES = {dict((s, sources[s]) for s in sorted(used))!r}")
        return tuple(lines)

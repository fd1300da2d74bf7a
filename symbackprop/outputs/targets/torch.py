"""PyTorch update code: the shared plan printed with ``torch`` calls.

:func:`module_source` writes a standalone module that imports only PyTorch:
``forward``, ``cost``, ``gradients``, ``cost_and_gradients``, ``step`` (in
place, under ``torch.no_grad``) and ``init_params`` on tensors of any device and
floating dtype, plus ``CostFunction``, a ``torch.autograd.Function`` whose
``backward`` is the derived gradients, and ``Network``, an ``nn.Module``
holding the parameters that calls it.

>>> from symbackprop import Dense, Network, derive
>>> source = module_source(derive(Network(1, [Dense(1, bias=False)])))
>>> "class CostFunction(torch.autograd.Function):" in source and "import numpy" not in source
True
"""

from __future__ import annotations

import sympy
from sympy import MatMul

from ...derive import Derivation
from ...errors import ShapeError
from ...errors import TrainingError as ArgumentError
from ..codegen import _LR, Function, _Statement, run_generated
from ._python import TargetPrinter, TensorGenerator, render, require, tensor_program

__all__ = ["TorchCodePrinter", "module_source", "compile_torch", "EXPORTS"]

EXPORTS = ("PARAMS", "SHAPES", "forward", "cost", "gradients", "cost_and_gradients", "step", "init_params",
           "CostFunction", "Network")

_NAMES = {name: f"torch.{name}" for name in (
    "sum", "broadcast_to", "exp", "log", "log1p", "sin", "cos", "tan", "tanh", "abs", "sqrt", "sign", "maximum",
    "minimum", "trace", "kron", "einsum", "diagflat", "diagonal", "sinh", "cosh", "arcsin", "arccos", "arctan")}
_NAMES.update({"linalg.det": "torch.linalg.det", "linalg.inv": "torch.linalg.inv",
               "linalg.matrix_power": "torch.linalg.matrix_power", "full_like": "torch.full_like"})


class TorchCodePrinter(TargetPrinter):
    """PyTorch code: ``torch.sum(x, dim=1, keepdim=True)``, ``torch.eye(n, dtype=X.dtype, device=X.device)``, …

    >>> from sympy import MatrixSymbol, OneMatrix, Symbol
    >>> m = Symbol("m", integer=True, positive=True)
    >>> W, X = MatrixSymbol("W1", 2, 3), MatrixSymbol("X", 3, m)
    >>> TorchCodePrinter().doprint((W * X).T * OneMatrix(2, 1))
    'torch.sum(X.T @ W1.T, dim=1, keepdim=True)'
    """

    printmethod = "_symbackprop_torch"
    engine = "PyTorch"
    names_map = _NAMES

    def _sum_along(self, factors, axis):
        text = self._print_product_of(factors) if len(factors) > 1 else self.full(factors[0])
        keep = "" if axis is None else f", dim={axis}, keepdim=True"
        return f"torch.sum({text}{keep})"

    def _print_Identity(self, expr) -> str:
        if expr.shape == (1, 1):
            return "1"
        return f"torch.eye({self._print(expr.shape[0])}, dtype=X.dtype, device=X.device)"

    def _print_UnitMatrix(self, expr) -> str:
        return self.refuse("a unit matrix")


# the stable forms of symbackprop.calculus.runtime, in torch
HELPERS = {
    "identity": "def identity(x):\n    return x\n",
    "identity_grad": "def identity_grad(x):\n    return torch.ones_like(x)\n",
    "sigmoid": "def sigmoid(x):\n    return torch.sigmoid(x)  # stable: no overflow for any x\n",
    "sigmoid_grad": "def sigmoid_grad(x):\n    e = torch.exp(-torch.abs(x))\n    return e / ((1 + e) * (1 + e))\n",
    "tanh": "def tanh(x):\n    return torch.tanh(x)\n",
    "tanh_grad": "def tanh_grad(x):\n    t = torch.tanh(x)\n    return 1 - t * t\n",
    "relu": "def relu(x):\n    return torch.clamp_min(x, 0)\n",
    "relu_grad": "def relu_grad(x):\n    return (x > 0).to(x.dtype)\n",
    "leaky_relu": "def leaky_relu(x):\n    return torch.where(x > 0, x, x * 0.01)\n",
    "leaky_relu_grad": "def leaky_relu_grad(x):\n"
                       "    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, 0.01))\n",
    "softplus": "def softplus(x):\n    # log(1 + e^x) = max(x, 0) + log1p(e^{-|x|})\n"
                "    return torch.clamp_min(x, 0) + torch.log1p(torch.exp(-torch.abs(x)))\n",
    "softplus_grad": "def softplus_grad(x):\n    return sigmoid(x)\n",
    "softmax": "def softmax(x, axis):\n    return torch.softmax(x, dim=axis)  # shifted by the maximum: stable\n",
    "log_softmax": "def log_softmax(x, axis):\n    return torch.log_softmax(x, dim=axis)\n",
    "log": "def log(x):\n    return torch.log(x)\n",
    "log_grad": "def log_grad(x):\n    return 1 / x\n",
    "sqrt": "def sqrt(x):\n    return torch.sqrt(x)\n",
    "sqrt_grad": "def sqrt_grad(x):\n    return 0.5 / torch.sqrt(x)\n",
    "exp": "def exp(x):\n    return torch.exp(x)\n",
    "exp_grad": "def exp_grad(x):\n    return torch.exp(x)\n",
}

# what PyTorch's arrays are, for the argument checks all tensor modules share (_support.py)
SUPPORT = [
    '''
_ARRAY = "tensor"
_KIND = "dtype and device"
''',
    '''
def _parameter(name, value):
    """A parameter: a floating ``torch.Tensor``, as it is (``step`` updates it in place)."""
    if not isinstance(value, torch.Tensor):
        raise ArgumentError(f"{name}: expected a torch.Tensor, given {type(value).__name__}")
    if not value.dtype.is_floating_point:
        raise ArgumentError(f"{name}: expected a floating-point tensor, given {value.dtype}")
    return value
''',
    '''
def _kind(array):
    return f"{array.dtype} on {array.device}"
''',
    '''
def _data(name, value, like):
    """X or Y as a tensor of ``like``'s dtype, on its device."""
    try:
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ArgumentError(f"{name}: expected a tensor of numbers, given {type(value).__name__}") from error
''',
    '''
def _traced(value):
    """PyTorch runs eagerly: every value is known."""
    return False
''',
    '''
def _item(value):
    return value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
''',
    '''
def _random_parameters(shapes, fan_in, seed, dtype, sizes, device):
    """Weights drawn from N(0, 1/fan-in), biases zero, for the given sizes (drawn on the CPU, then moved)."""
    concrete = _concrete_shapes(shapes, sizes)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ArgumentError(f"dtype: expected a floating torch dtype, given {dtype}")
    generator = torch.Generator().manual_seed(_seed(seed, 64))
    params = {}
    for name, shape in concrete.items():
        if name in fan_in:
            value = torch.randn(shape, generator=generator, dtype=torch.float64) / shape[fan_in[name]] ** 0.5
        else:
            value = torch.zeros(shape, dtype=torch.float64)
        params[name] = value.to(device=device, dtype=dtype)
    return params
''',
]


class TorchGenerator(TensorGenerator):
    printer_class = TorchCodePrinter
    helper_table = HELPERS

    def fixed_value(self, name: str, shape: str) -> str:
        return f"torch.as_tensor(FIXED[{name!r}], dtype=X.dtype, device=X.device).broadcast_to({shape})"

    def step(self) -> Function:
        """Each parameter updated in place once nothing still needs its old value; a weight's product
        gradient ``c A B`` goes straight into it (``W.addmm_(A, B, alpha=-lr c)``)."""
        updates = []
        for name, gradient in self.plan.gradients.items():
            matrices = [a for a in gradient.args if a.is_Matrix] if isinstance(gradient, MatMul) else []
            product = self.printer.is_product(gradient) and len(matrices) == 2
            if product:
                coefficient = sympy.Mul(*(a for a in gradient.args if not a.is_Matrix))
                (left, l_reads), (right, r_reads) = (self._printed(m) for m in matrices)
                alpha, a_names, a_symbols = self.print(-_LR * coefficient)
                reads = [*l_reads, *r_reads, *a_names, *a_symbols]
                method = "addmm_" if self.printer.product_operator(matrices[0]) == "@" else "addcmul_"
                keyword = "alpha" if method == "addmm_" else "value"
                code = f"{name}.{method}({left}, {right}, {keyword}={alpha})"
            else:
                value, names, symbols = self.print(gradient)
                reads = [*names, *symbols]
                code = f"{name}.sub_({value}, alpha=lr)"
            if any(n in self.params and n != name for n in reads):
                # it reads another parameter: computed first, applied once no update needs an old value
                value, names, symbols = self.print(gradient)
                work = f"d{name}"
                updates.append(_Statement(work, f"{work} = {value}", (*names, *symbols)))
                updates.append(_Statement(None, f"{name}.sub_({work}, alpha=lr)", (work, name)))
            else:
                updates.append(_Statement(None, code, (*reads, name)))
        function = self.function(
            "step", "One step of gradient descent, in place under ``torch.no_grad()``; returns None.",
            updates, in_place=True)
        return Function(function.name, function.signature, function.doc,
                        ("with torch.no_grad():", *("    " + line for line in function.body)))

    def _printed(self, matrix):
        code, names, symbols = self.print(matrix)
        return code, (*names, *symbols)


def program(derivation: Derivation):
    g = TorchGenerator(derivation)
    api = [g.forward(), g.cost(), g.gradients(), g.cost_and_gradients(), g.step(),
           g.init_params("seed=0, dtype=None, device=None, **sizes")]
    return tensor_program(derivation, g, api, SUPPORT, "torch.full_like")


def module_source(derivation: Derivation) -> str:
    """The text of a standalone PyTorch module for ``derivation`` (byte-identical for the same input)."""
    return render("torch_module.py.j2", program(derivation), EXPORTS)


class TorchFunctions:
    """The generated PyTorch module of a derivation, run in this process: its names as attributes."""

    def __init__(self, source: str) -> None:
        require("torch", "PyTorch", 'pip install torch (or pip install "symbackprop[engines]")')
        self.source = source
        self.filename, self.namespace = run_generated(source, 'torch')
        namespace = self.namespace
        for name in (*EXPORTS, "ShapeError", "ArgumentError", "DATA_SHAPES"):
            setattr(self, name, namespace[name])

    def __repr__(self) -> str:
        return f"<TorchFunctions for {', '.join(self.PARAMS)}>"


def compile_torch(derivation: Derivation) -> TorchFunctions:
    """The generated PyTorch functions and classes of ``derivation``, ready to call."""
    return TorchFunctions(module_source(derivation))

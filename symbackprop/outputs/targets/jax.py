"""JAX update code: the shared plan printed with ``jax.numpy`` calls, as pure, jit-able functions.

:func:`module_source` writes a standalone module that imports only JAX:
``forward``, ``cost``, ``gradients``, ``cost_and_gradients``, ``step`` (a new
dict) and ``init_params``, plus ``cost_vjp``, a ``jax.custom_vjp`` function
whose backward is the derived gradients.

>>> from symbackprop import Dense, Network, derive
>>> source = module_source(derive(Network(1, [Dense(1, bias=False)])))
>>> "@jax.custom_vjp" in source and "import numpy" not in source
True
"""

from __future__ import annotations

from sympy import MatAdd

from ...derive import Derivation
from ...errors import ShapeError
from ...errors import TrainingError as ArgumentError
from ...printing.numpy import scaled
from ..codegen import _LR, Function, run_generated
from ._python import TargetPrinter, TensorGenerator, render, require, tensor_program

__all__ = ["JaxCodePrinter", "module_source", "compile_jax", "EXPORTS"]

EXPORTS = ("PARAMS", "SHAPES", "forward", "cost", "gradients", "cost_and_gradients", "step", "init_params",
           "cost_vjp")


class _AllNames(dict):
    def __contains__(self, name) -> bool:
        return True

    def __getitem__(self, name) -> str:
        return f"jnp.{name}"


class JaxCodePrinter(TargetPrinter):
    """JAX code: NumPy's calls from ``jax.numpy`` (``jnp.sum``, ``jnp.broadcast_to``, …).

    >>> from sympy import MatrixSymbol, OneMatrix, Symbol
    >>> m = Symbol("m", integer=True, positive=True)
    >>> W, X = MatrixSymbol("W1", 2, 3), MatrixSymbol("X", 3, m)
    >>> JaxCodePrinter().doprint((W * X).T * OneMatrix(2, 1))
    'jnp.sum(X.T @ W1.T, axis=1, keepdims=True)'
    """

    printmethod = "_symbackprop_jax"
    engine = "JAX"
    names_map = _AllNames()

    def _print_Identity(self, expr) -> str:
        if expr.shape == (1, 1):
            return "1"
        return f"jnp.eye({self._print(expr.shape[0])}, dtype=X.dtype)"


# the stable forms of symbackprop.calculus.runtime, in jax.numpy
HELPERS = {
    "identity": "def identity(x):\n    return x\n",
    "identity_grad": "def identity_grad(x):\n    return jnp.ones_like(x)\n",
    "sigmoid": "def sigmoid(x):\n    return jax.nn.sigmoid(x)  # stable: no overflow for any x\n",
    "sigmoid_grad": "def sigmoid_grad(x):\n    e = jnp.exp(-jnp.abs(x))\n    return e / ((1 + e) * (1 + e))\n",
    "tanh": "def tanh(x):\n    return jnp.tanh(x)\n",
    "tanh_grad": "def tanh_grad(x):\n    t = jnp.tanh(x)\n    return 1 - t * t\n",
    "relu": "def relu(x):\n    return jnp.maximum(x, 0)\n",
    "relu_grad": "def relu_grad(x):\n    return (x > 0).astype(x.dtype)\n",
    "leaky_relu": "def leaky_relu(x):\n    return jnp.where(x > 0, x, x * 0.01)\n",
    "leaky_relu_grad": "def leaky_relu_grad(x):\n"
                       "    return jnp.where(x > 0, jnp.ones_like(x), jnp.full_like(x, 0.01))\n",
    "softplus": "def softplus(x):\n    # log(1 + e^x) = max(x, 0) + log1p(e^{-|x|})\n"
                "    return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x)))\n",
    "softplus_grad": "def softplus_grad(x):\n    return sigmoid(x)\n",
    "softmax": "def softmax(x, axis):\n    return jax.nn.softmax(x, axis=axis)  # shifted by the maximum: stable\n",
    "log_softmax": "def log_softmax(x, axis):\n    return jax.nn.log_softmax(x, axis=axis)\n",
    "log": "def log(x):\n    return jnp.log(x)\n",
    "log_grad": "def log_grad(x):\n    return 1 / x\n",
    "sqrt": "def sqrt(x):\n    return jnp.sqrt(x)\n",
    "sqrt_grad": "def sqrt_grad(x):\n    return 0.5 / jnp.sqrt(x)\n",
    "exp": "def exp(x):\n    return jnp.exp(x)\n",
    "exp_grad": "def exp_grad(x):\n    return jnp.exp(x)\n",
}

# what JAX's arrays are, for the argument checks all tensor modules share (_support.py)
SUPPORT = [
    '''
_ARRAY = "array"
_KIND = "dtype"
''',
    '''
def _parameter(name, value):
    """A parameter as a floating JAX array."""
    try:
        array = jnp.asarray(value)
    except TypeError as error:
        raise ArgumentError(f"{name}: expected an array, given {type(value).__name__}") from error
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise ArgumentError(f"{name}: expected a floating-point array, given {array.dtype}")
    return array
''',
    '''
def _kind(array):
    return f"dtype {array.dtype}"
''',
    '''
def _data(name, value, like):
    """X or Y as an array of ``like``'s dtype."""
    try:
        return jnp.asarray(value, dtype=like.dtype)
    except (TypeError, ValueError) as error:
        raise ArgumentError(f"{name}: expected an array of numbers, given {type(value).__name__}") from error
''',
    '''
def _traced(value):
    """Under ``jax.jit`` (or ``grad``, ``vmap``) a value is a tracer: its shape is known, its numbers are not."""
    return isinstance(value, jax.core.Tracer)
''',
    '''
def _item(value):
    return value.item() if isinstance(value, jax.Array) and value.size == 1 else value
''',
    '''
def _random_parameters(shapes, fan_in, seed, dtype, sizes):
    """Weights drawn from N(0, 1/fan-in), biases zero, for the given sizes."""
    concrete = _concrete_shapes(shapes, sizes)
    try:
        floating = jnp.issubdtype(dtype, jnp.floating)
    except TypeError:
        floating = False
    if not floating:
        raise ArgumentError(f"dtype: expected a floating dtype, given {dtype}")
    keys = jax.random.split(jax.random.PRNGKey(_seed(seed, 32)), len(shapes))
    params = {}
    for key, (name, shape) in zip(keys, concrete.items()):
        if name in fan_in:
            params[name] = jax.random.normal(key, shape, dtype=dtype) / shape[fan_in[name]] ** 0.5
        else:
            params[name] = jnp.zeros(shape, dtype=dtype)
    return params
''',
]


class JaxGenerator(TensorGenerator):
    printer_class = JaxCodePrinter
    helper_table = HELPERS

    def fixed_value(self, name: str, shape: str) -> str:
        return f"jnp.broadcast_to(jnp.asarray(FIXED[{name!r}], dtype=X.dtype), {shape})"

    def step(self) -> Function:
        entries, reads = {}, []
        for name, gradient in self.plan.gradients.items():
            entries[name], names, symbols = self.print(MatAdd(self.d.symbols[name], scaled(-_LR, gradient)))
            reads += [*names, *symbols]
        return self.function("step", "One step of gradient descent: a new dict, each parameter minus lr times "
                             "its gradient.", [self._returning(entries, reads)])


def program(derivation: Derivation):
    g = JaxGenerator(derivation)
    api = [g.forward(), g.cost(), g.gradients(), g.cost_and_gradients(), g.step(),
           g.init_params("seed=0, dtype=jnp.float32, **sizes")]
    return tensor_program(derivation, g, api, SUPPORT, "jnp.full_like")


def module_source(derivation: Derivation) -> str:
    """The text of a standalone JAX module for ``derivation`` (byte-identical for the same input)."""
    return render("jax_module.py.j2", program(derivation), EXPORTS)


class JaxFunctions:
    """The generated JAX module of a derivation, run in this process: its names as attributes."""

    def __init__(self, source: str) -> None:
        require("jax", "JAX", 'pip install jax (or pip install "symbackprop[engines]")')
        self.source = source
        self.filename, self.namespace = run_generated(source, 'jax')
        namespace = self.namespace
        for name in (*EXPORTS, "ShapeError", "ArgumentError", "DATA_SHAPES"):
            setattr(self, name, namespace[name])

    def __repr__(self) -> str:
        return f"<JaxFunctions for {', '.join(self.PARAMS)}>"


def compile_jax(derivation: Derivation) -> JaxFunctions:
    """The generated JAX functions of ``derivation``, ready to call."""
    return JaxFunctions(module_source(derivation))

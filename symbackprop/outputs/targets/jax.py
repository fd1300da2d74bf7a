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

SUPPORT = [
    '''
def _check_arguments(params, X, Y, shapes, data_shapes, in_place=False):
    """The parameters in the order of ``shapes``, then X (and Y) as arrays of the parameters' dtype.

    Checks the parameter names, that each is a floating array, every shape (a size
    given as a name is bound by the first array that has it) and that all share one
    dtype; X and Y are converted to it.  Shapes are static, so this runs under jit too.
    """
    if not isinstance(params, dict):
        raise ArgumentError(f"params must be a dict of arrays keyed {', '.join(shapes)}, not {type(params).__name__}")
    if params.keys() != shapes.keys():
        missing = [name for name in shapes if name not in params]
        unknown = [str(name) for name in params if name not in shapes]
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else [])
        raise ArgumentError(f"params: {'; '.join(problems)}; expected {', '.join(shapes)}")
    arrays = []
    for name in shapes:
        try:
            array = jnp.asarray(params[name])
        except TypeError as error:
            raise ArgumentError(f"{name}: expected an array, given {type(params[name]).__name__}") from error
        if not jnp.issubdtype(array.dtype, jnp.floating):
            raise ArgumentError(f"{name}: expected a floating-point array, given {array.dtype}")
        if arrays and array.dtype != arrays[0].dtype:
            first = next(iter(shapes))
            raise ArgumentError(f"{name}: dtype {array.dtype} differs from {first}'s {arrays[0].dtype}; "
                                f"give every parameter the same dtype")
        arrays.append(array)
    data = {"X": X} if Y is None else {"X": X, "Y": Y}
    for name, value in data.items():
        try:
            data[name] = jnp.asarray(value, dtype=arrays[0].dtype)
        except (TypeError, ValueError) as error:
            raise ArgumentError(f"{name}: expected an array of numbers, given {type(value).__name__}") from error
    sizes, bound_by = {}, {}
    checked = [("X", data["X"], data_shapes["X"]), *zip(shapes, arrays, shapes.values())]
    if Y is not None:
        checked.append(("Y", data["Y"], data_shapes["Y"]))
    for name, array, expected in checked:
        given = tuple(array.shape)
        if len(given) != 2:
            raise ShapeError(f"{name}: expected a 2-d array of shape ({', '.join(map(str, expected))}), "
                             f"given shape {given}")
        for size, actual in zip(expected, given):
            known = sizes.setdefault(size, actual) if isinstance(size, str) else size
            if known != actual:
                shown = ", ".join(str(sizes.get(s, s)) for s in expected)
                source = f" ({size} = {known} from {bound_by[size]})" if size in bound_by else ""
                raise ShapeError(f"{name}: expected shape ({shown}){source}, given {given}")
            if isinstance(size, str):
                bound_by.setdefault(size, name)
    return (*arrays, *data.values())
''',
    '''
def _learning_rate(lr):
    """``lr``: a number is checked positive and finite; a traced value (under jit) is taken as it is."""
    if isinstance(lr, jax.Array):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise ArgumentError(f"lr: expected a positive number, given {type(lr).__name__} {lr!r}")
    if not 0 < float(lr) < float("inf"):
        raise ArgumentError(f"lr: the learning rate must be a positive finite number, given {lr}")
    return float(lr)
''',
    '''
def _scalar(name, value):
    """A scalar setting such as a weight decay: a number finite and not negative (a traced value as it is)."""
    if isinstance(value, jax.Array):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentError(f"{name}: expected a number, given {type(value).__name__} {value!r}")
    if not 0 <= value < float("inf"):
        raise ArgumentError(f"{name}: expected a finite number ≥ 0, given {value!r}")
    return float(value)
''',
    '''
def _random_parameters(shapes, fan_in, seed, dtype, sizes):
    """Weights drawn from N(0, 1/fan-in), biases zero, for the given sizes."""
    needed = sorted({size for shape in shapes.values() for size in shape if isinstance(size, str)})
    missing = [size for size in needed if size not in sizes]
    if missing:
        raise ShapeError(f"init_params needs the size{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                         f"e.g. init_params(0, {missing[0]}=4)")
    for size in needed:
        value = sizes[size]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ShapeError(f"init_params: the size {size} must be a positive integer, given {value!r}")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ArgumentError(f"dtype: expected a floating dtype, given {dtype}")
    keys = jax.random.split(jax.random.PRNGKey(seed), len(shapes))
    params = {}
    for key, (name, shape) in zip(keys, shapes.items()):
        concrete = tuple(sizes[size] if isinstance(size, str) else size for size in shape)
        if name in fan_in:
            params[name] = jax.random.normal(key, concrete, dtype=dtype) / concrete[fan_in[name]] ** 0.5
        else:
            params[name] = jnp.zeros(concrete, dtype=dtype)
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

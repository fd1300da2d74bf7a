"""Executable update functions: NumPy code generated from a derivation.

:func:`module_source` writes a standalone Python module that needs only
NumPy and defines ``PARAMS``, ``SHAPES``, ``forward``, ``cost``, ``gradients``,
``step``, ``step_inplace`` and ``init_params``; :func:`compile_numpy` runs the
same source in-process and returns its functions as an :class:`UpdateFunctions`.

Every right-hand side is printed by
:class:`~symbackprop.printing.numpy.NumPyCodePrinter` from the derivation's
own expressions; the Jinja2 template ``numpy_module.py.j2`` only lays the
printed lines out.  The code computes each ``z``, ``a`` and ``δ`` once per
call, broadcasts biases, and uses the stable helpers of
:mod:`symbackprop.calculus.runtime` (copied into the module, only those it calls).
``step_inplace`` is the same plan lowered into a workspace and BLAS-fused
updates by :mod:`.fused`.

>>> from symbackprop import Dense, Network, derive
>>> import numpy as np
>>> f = compile_numpy(derive(Network(1, [Dense(1, bias=False)])))
>>> params = {"W1": np.array([[-23.1]])}
>>> f.step(params, np.array([[5.7]]), np.array([[50.1]]), 0.007)["W1"].round(4)
array([[-8.5948]])
"""

from __future__ import annotations

import builtins
import dis
import hashlib
import inspect
import linecache
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import sympy
from sympy import HadamardProduct, MatAdd, MatrixExpr, Piecewise

from .. import naming
from ..calculus import runtime
from ..calculus.expressions import Normalize
from ..calculus.trees import walk
from ..derive import Derivation
from ..errors import ShapeError, SpecError
from ..errors import TrainingError as ArgumentError
from ..printing.numpy import NumPyCodePrinter, is_negative_term, scaled
from .fused import WORKSPACE_NAMES, InPlaceStep
from .fused import helper_sources as in_place_helpers
from .targets._support import _bound_sizes
from .targets.plan import plan as make_plan
from .templating import environment

__all__ = ["UpdateFunctions", "compile_numpy", "module_source", "numpy_cost"]


def numpy_cost(derivation: Derivation) -> sympy.Expr:
    """The derivation's cost as code computes it: the cross-entropies in their stable form through z.

    >>> from symbackprop import Dense, Network, derive
    >>> d = derive(Network(2, [Dense(1, "sigmoid")], cost="binary_cross_entropy"))
    >>> from symbackprop.printing.numpy import to_numpy
    >>> to_numpy(numpy_cost(d))
    'np.sum(softplus(z1) - Y * z1)'
    """
    return derivation.program.numeric_cost


# --- support code, copied into every generated module ------------------------------------
# It raises ShapeError and ArgumentError: the library's classes here, the module's own there.


def _check_arguments(params, X, Y, shapes, data_shapes, in_place=False, one_hot=None):
    """The parameters in the order of ``shapes``, then X (and Y), as arrays of one float dtype.

    Checks the parameter names, every shape (a size given as a name is bound by
    the first array that has it) and the dtypes; X and Y take the parameters' dtype.
    With ``one_hot`` (the axis of X that holds the words), X is one-hot samples
    or a 1-d array of integer ids, which stay integers.
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
        value = params[name]
        if in_place and not (isinstance(value, np.ndarray) and value.flags.writeable):
            raise ArgumentError(f"{name}: step_inplace updates the caller's arrays, so {name} must be a "
                                f"writeable NumPy array, not {type(value).__name__}")
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            raise ArgumentError(f"{name}: expected an array of numbers (rows of equal length), "
                                f"given {type(value).__name__}") from None
        if array.dtype.kind == "f" and array.dtype not in (np.float32, np.float64):
            raise ArgumentError(f"{name}: expected a floating-point array (float32 or float64), given {array.dtype}")
        if array.dtype.kind != "f":
            if in_place or array.dtype.kind not in "biu":
                raise ArgumentError(f"{name}: expected a floating-point array (float32 or float64), given {array.dtype}")
            array = array.astype(np.float64)
        if arrays and array.dtype != arrays[0].dtype:
            first = next(iter(shapes))
            raise ArgumentError(f"{name}: dtype {array.dtype} differs from {first}'s {arrays[0].dtype}; "
                                f"give every parameter the same dtype")
        arrays.append(array)
    dtype = arrays[0].dtype
    data = {"X": X} if Y is None else {"X": X, "Y": Y}
    ids = False
    for name, value in data.items():
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            raise ArgumentError(f"{name}: expected an array of numbers (rows of equal length), "
                                f"given {type(value).__name__}") from None
        if array.dtype.kind not in "biuf":
            raise ArgumentError(f"{name}: expected numbers, given an array of {array.dtype}")
        if name == "X" and one_hot is not None and array.ndim == 1:
            if array.dtype.kind not in "iu":
                raise ArgumentError(f"X: the embedding takes one-hot samples or a 1-d array of integer word ids, "
                                    f"given a 1-d array of {array.dtype}")
            ids = True
            data[name] = array
            continue
        data[name] = array if array.dtype == dtype else array.astype(dtype)
    x_shape = data_shapes["X"]
    if ids:  # the ids give the number of samples; the vocabulary is E's
        x_shape = (x_shape[1 - one_hot],)
    checked = [("X", data["X"], x_shape), *zip(shapes, arrays, shapes.values())]
    if Y is not None:
        checked.append(("Y", data["Y"], data_shapes["Y"]))
    sizes = _bound_sizes(checked)
    if one_hot is not None:
        words = data_shapes["X"][one_hot]
        vocab = sizes.get(words, words)
        X = data["X"]
        if ids:
            if X.size and (X.min() < 0 or X.max() >= vocab):
                raise ArgumentError(f"X: word ids must be from 0 to {vocab - 1} (the vocabulary has {vocab} words); "
                                    f"given ids from {X.min()} to {X.max()}")
        elif not (np.all((X == 0) | (X == 1)) and np.all(X.sum(axis=one_hot) == 1)):
            sample = "column" if one_hot == 0 else "row"
            raise ArgumentError(f"X: the embedding takes one-hot samples (each {sample} a single 1, zeros "
                                f"elsewhere) or a 1-d array of integer word ids")
    return (*arrays, *data.values())


def _data(name, value, shape, dtype):
    """Another given matrix of the model (beside X and Y), as an array of ``shape`` in the parameters' dtype."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"{name}: expected an array of numbers, given {type(value).__name__}") from None
    if array.dtype.kind not in "biuf":
        raise ArgumentError(f"{name}: expected numbers, given an array of {array.dtype}")
    if array.shape != shape:
        raise ShapeError(f"{name}: expected shape {shape}, given shape {array.shape}")
    return array.astype(dtype, copy=False)


def _mask(name, mask, shape, dtype, rate):
    """A dropout mask of 0s and 1s in the parameters' dtype; None is evaluation mode: the scalar 1 − p,
    so that the layer's M ⊙ x / (1 − p) passes x through."""
    if mask is None:
        return dtype.type(1 - rate)
    try:
        array = np.asarray(mask)
    except (TypeError, ValueError):
        raise ArgumentError(f"{name}: expected a dropout mask of 0s and 1s, given {type(mask).__name__}") from None
    if array.shape != shape:
        raise ShapeError(f"{name}: expected a dropout mask of shape {shape}, given shape {array.shape}")
    if array.dtype.kind not in "biuf" or not np.all((array == 0) | (array == 1)):
        raise ArgumentError(f"{name}: a dropout mask holds only 0 (dropped) and 1 (kept)")
    return array.astype(dtype, copy=False)


def _learning_rate(lr):
    """``lr`` as a Python float (so it never changes the arrays' dtype), checked positive and finite."""
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, (int, float, np.integer, np.floating)):
        raise ArgumentError(f"lr: expected a positive number, given {type(lr).__name__} {lr!r}")
    try:
        value = float(lr)
    except OverflowError:  # a Python int beyond float64
        raise ArgumentError("lr: the learning rate must be a positive finite number, given a whole number "
                            "beyond float64's range") from None
    if not 0 < value < float("inf"):
        raise ArgumentError(f"lr: the learning rate must be a positive finite number, given {lr}")
    return value


def _scalar(name, value):
    """A scalar setting such as a weight decay, as a Python float: finite and not negative."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ArgumentError(f"{name}: expected a number, given {type(value).__name__} {value!r}")
    try:
        number = float(value)
    except OverflowError:  # a Python int beyond float64
        raise ArgumentError(f"{name}: expected a finite number ≥ 0, given a whole number beyond float64's "
                            f"range") from None
    if not (np.isfinite(number) and number >= 0):
        raise ArgumentError(f"{name}: expected a finite number ≥ 0, given {value!r}")
    return number


def _new_workspace(params, X, Y, key):
    """Check the arguments, then make the buffers of ``_WORKSPACE`` for their sizes and dtype, kept under ``key``.

    None when the fast path cannot take the arrays: no BLAS to call (neither
    NumPy's own nor SciPy's), data of another dtype than the parameters, or
    parameters that are not C-ordered writeable arrays.
    """
    arrays = _check_arguments(params, X, Y, SHAPES, DATA_SHAPES, True)
    dtype = arrays[0].dtype
    blas = _blas()
    if key is None or blas is None or X.dtype != dtype or Y.dtype != dtype or not all(
            array.flags.carray for array in arrays[:len(SHAPES)]):
        return None
    address, functions, make = blas
    letter = "s" if dtype == np.float32 else "d"
    named = dict(zip([*SHAPES, "X", "Y"], arrays))
    sizes = {size: named[array].shape[axis] for size, (array, axis) in _SIZES.items()}
    slots, holders, workspace = {}, {}, []

    def holder(tag, name):  # set by each call: an array's address ("h"), or a scalar of lr ("s")
        if (tag, name) not in holders:
            holders[tag, name] = make["pointer"](None) if tag == "h" else make[letter](0.0)
        return holders[tag, name]

    for kind, slot, shape in _WORKSPACE:
        if kind == "call":  # a BLAS call's arguments, made once (see the lowering's notes)
            arguments = []
            for tag, value in shape:
                if tag == "e":
                    arguments.append(make["enum"](value))
                elif tag == "i":  # a size, or (an AXPY's length) the product of an array's sizes
                    count = 1
                    for size in value if isinstance(value, tuple) else (value,):
                        count *= sizes[size] if isinstance(size, str) else size
                    arguments.append(make["int"](count))
                elif tag == "r":
                    arguments.append(make[letter](value))
                elif tag == "b":
                    arguments.append(make["pointer"](address(slots[value])))
                else:
                    arguments.append(holder(tag, value))
            workspace.append(tuple(arguments))
            continue
        concrete = tuple(sizes[d] if isinstance(d, str) else d for d in shape)
        if kind == "blas":
            workspace.append(functions[letter + slot])
        elif kind == "address":  # what stands for an array in a call: its address, or the array for SciPy
            workspace.append(address)
        elif kind in ("holder", "scalar"):
            workspace.append(holder("h" if kind == "holder" else "s", slot))
        elif kind == "later":  # a causal softmax's masked entries: after the diagonal (before it, along axis 0)
            later = np.triu(np.ones(concrete, dtype=bool), 1)
            workspace.append(later if slot == "1" else np.ascontiguousarray(later.T))
        elif kind == "fixed":  # C-ordered, as BLAS reads it
            slots[slot] = np.array(np.broadcast_to(np.asarray(FIXED[slot], dtype=dtype), concrete))
            workspace.append(slots[slot])
        else:
            if slot not in slots:
                slots[slot] = np.ones(concrete, dtype) if kind == "ones" else np.empty(concrete, dtype)
            workspace.append(slots[slot])
    if len(_WORKSPACES) >= 8:  # a few batch sizes and threads at most; forget the oldest
        _WORKSPACES.pop(next(iter(_WORKSPACES), None), None)
    _WORKSPACES[key] = workspace = tuple(workspace)
    return workspace


def _blas():
    """The BLAS step_inplace calls, looked up on its first use: (address, functions, make), or None.

    NumPy's own OpenBLAS first, through ctypes: its threads are the ones
    NumPy's matmul wakes.  Two BLAS libraries in one process each keep a pool
    of threads that spin between calls, and a step through SciPy's copy
    alternating with NumPy products (the training loop's cost) ran 2.6-3.6
    times slower on two cores.  SciPy's wrappers are the second choice (a
    NumPy built on another BLAS shares it with SciPy).  Either way each
    function takes the CBLAS row-major arguments as objects ``make`` makes
    ("enum", "int", "s" and "d" reals, "pointer"), each with a ``value``;
    ``address`` gives what a pointer holds for an array: its address for
    ctypes, the array itself for SciPy.
    """
    if not _BLAS:
        _BLAS.append(_numpy_cblas() or _scipy_blas())
    return _BLAS[0]


def _numpy_cblas():
    """NumPy's bundled OpenBLAS through ctypes, once a few small products agree with NumPy's; else None.

    The functions take ctypes objects made once, with no argument types to
    convert on each call: half the cost of a ctypes call.
    """
    import ctypes
    import glob
    import os

    def address(array, char=ctypes.c_char, addressof=ctypes.addressof):
        try:  # a third of the time of array.ctypes.data
            return addressof(char.from_buffer(array))
        except (TypeError, ValueError):  # read-only or empty
            return array.ctypes.data

    root = os.path.dirname(np.__file__)
    paths = sorted(glob.glob(os.path.join(root, os.pardir, "numpy.libs", "*openblas*"))
                   + glob.glob(os.path.join(root, ".dylibs", "*openblas*")))
    try:  # on Linux, the copy this process has loaded first: the one NumPy's matmul calls
        with open("/proc/self/maps") as maps:
            loaded = {os.path.realpath(line.split()[-1]) for line in maps if "openblas" in line}
    except OSError:
        loaded = set()
    paths.sort(key=lambda path: os.path.realpath(path) not in loaded)
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, integer in (("scipy_cblas_", "64_", ctypes.c_int64), ("cblas_", "64_", ctypes.c_int64),
                                        ("scipy_cblas_", "", ctypes.c_int), ("cblas_", "", ctypes.c_int)):
            functions = {}
            for letter in "sd":
                for name in ("gemm", "gemv", "ger", "axpy"):
                    function = getattr(library, prefix + letter + name + suffix, None)
                    if function is not None:
                        function.restype = None
                        functions[letter + name] = function
            make = {"enum": ctypes.c_int, "int": integer, "s": ctypes.c_float, "d": ctypes.c_double,
                    "pointer": ctypes.c_void_p}
            if len(functions) == 8 and _blas_agrees(address, functions, make):
                return address, functions, make
    return None


def _scipy_blas():
    """SciPy's BLAS wrappers behind the CBLAS row-major arguments, arrays standing for addresses; or None.

    A C-ordered array's transpose is the Fortran-ordered matrix SciPy's wrappers write in place.
    """
    try:
        from scipy.linalg import blas
    except ImportError:
        return None
    from types import SimpleNamespace

    functions = {}
    for letter in "sd":
        gemm, gemv, ger, axpy = (getattr(blas, letter + name) for name in ("gemm", "gemv", "ger", "axpy"))

        def gemm_(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, gemm=gemm):
            gemm(alpha.value, b.value.T, a.value.T, beta.value, c.value.T, tb == 112, ta == 112, 1)

        def gemv_(order, trans, m, n, alpha, a, lda, x, incx, beta, y, incy, gemv=gemv):
            gemv(alpha.value, a.value.T, x.value.reshape(-1), beta.value, y.value.reshape(-1), 0, 1, 0, 1,
                 trans == 111, 1)

        def ger_(order, m, n, alpha, x, incx, y, incy, a, lda, ger=ger):
            ger(alpha.value, y.value.reshape(-1), x.value.reshape(-1), 1, 1, a.value.T, 1, 1, 1)

        def axpy_(n, alpha, x, incx, y, incy, axpy=axpy):
            axpy(x.value.reshape(-1), y.value.reshape(-1), n, alpha.value)

        functions.update({letter + "gemm": gemm_, letter + "gemv": gemv_, letter + "ger": ger_,
                          letter + "axpy": axpy_})

    def holder(value):
        return SimpleNamespace(value=value)

    make = {"enum": int, "int": int, "s": holder, "d": holder, "pointer": holder}
    return (lambda array: array), functions, make


def _blas_agrees(address, functions, make):
    """Whether each function, called as step_inplace calls it, gives NumPy's result on small arrays."""
    for letter, dtype in (("s", np.float32), ("d", np.float64)):
        a = np.arange(1.0, 7.0, dtype=dtype).reshape(2, 3)
        b = np.arange(1.0, 13.0, dtype=dtype).reshape(3, 4)
        c = np.ones((2, 4), dtype)
        x, y = np.array([[1.0], [2.0]], dtype), np.array([[1.0], [-1.0], [2.0]], dtype)
        b2 = np.ascontiguousarray(b[:, :2])
        expected = [0.5 * a @ b + 2.0, 0.5 * a @ a.T + 2.0, 0.5 * b.T @ b2 + 2.0, 0.5 * a.T @ x + 2.0,
                    0.5 * a @ y + 2.0, a + 0.5 * x @ y.T, a + 0.5 * a]
        out = [np.full((2, 4), 1.0, dtype), np.full((2, 2), 1.0, dtype), np.full((4, 2), 1.0, dtype),
               np.full((3, 1), 1.0, dtype), np.full((2, 1), 1.0, dtype), a.copy(), a.copy()]
        p = [make["pointer"](address(array)) for array in (a, b, x, y, *out, b2)]
        e, i, r = make["enum"], make["int"], make[letter]
        half, two = r(0.5), r(2.0)
        try:  # a library that takes other arguments fails here, not in a step
            functions[letter + "gemm"](e(101), e(111), e(111), i(2), i(4), i(3), half, p[0], i(3), p[1], i(4),
                                       two, p[4], i(4))
            functions[letter + "gemm"](e(101), e(111), e(112), i(2), i(2), i(3), half, p[0], i(3), p[0], i(3),
                                       two, p[5], i(2))
            functions[letter + "gemm"](e(101), e(112), e(111), i(4), i(2), i(3), half, p[1], i(4), p[11], i(2),
                                       two, p[6], i(2))
            functions[letter + "gemv"](e(101), e(112), i(2), i(3), half, p[0], i(3), p[2], i(1), two, p[7], i(1))
            functions[letter + "gemv"](e(101), e(111), i(2), i(3), half, p[0], i(3), p[3], i(1), two, p[8], i(1))
            functions[letter + "ger"](e(101), i(2), i(3), half, p[2], i(1), p[3], i(1), p[9], i(3))
            functions[letter + "axpy"](i(6), half, p[0], i(1), p[10], i(1))
        except Exception:
            return False
        if not all(np.allclose(o, e, rtol=1e-5) for o, e in zip(out, expected)):
            return False
    return True


def _commit(params, new):
    """Copy the new values of a plain ``step`` into the caller's arrays."""
    for name, value in new.items():
        np.copyto(params[name], value)


def _distributions_into(Y, axis, sums):
    """``_distributions`` with the sums in a buffer of the workspace: nothing allocated when the targets are fine."""
    tolerance = 1e-4 if Y.dtype == np.float32 else 1e-9
    np.sum(Y, axis=axis, keepdims=True, out=sums)
    if not (Y.min() >= 0 and sums.min() >= 1 - tolerance and sums.max() <= 1 + tolerance):
        _distributions(Y, axis)


def _random_parameters(shapes, fan_in, seed, dtype, sizes):
    """Weights drawn from N(0, 1/fan-in), biases zero, for the given sizes."""
    needed = sorted({size for shape in shapes.values() for size in shape if isinstance(size, str)})
    missing = [size for size in needed if size not in sizes]
    if missing:
        raise ShapeError(f"init_params needs the size{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                         f"e.g. init_params(0, {missing[0]}=4)")
    for size in needed:
        value = sizes[size]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ShapeError(f"init_params: the size {size} must be a positive integer, given {value!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError(f"seed: expected a whole number ≥ 0, given {seed!r}")
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError):
        raise ArgumentError(f"dtype: expected float32 or float64, given {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise ArgumentError(f"dtype: expected float32 or float64, given {dtype}")
    concrete_shapes = {name: tuple(int(sizes[size]) if isinstance(size, str) else size for size in shape)
                       for name, shape in shapes.items()}
    entries = sum(rows * cols for rows, cols in concrete_shapes.values())
    if entries > 2**28:  # 2 GiB of float64, refused before anything is allocated
        largest = max(concrete_shapes, key=lambda name: concrete_shapes[name][0] * concrete_shapes[name][1])
        raise ShapeError(f"init_params: the parameters would have {entries} entries in all ({largest} is "
                         f"{concrete_shapes[largest]}); at most {2**28}")
    rng = np.random.default_rng(seed)
    params = {}
    for name, concrete in concrete_shapes.items():
        if name in fan_in:
            params[name] = (rng.standard_normal(concrete) / np.sqrt(concrete[fan_in[name]])).astype(dtype)
        else:
            params[name] = np.zeros(concrete, dtype=dtype)
    return params


def _distributions(Y, axis):
    """Softmax with cross-entropy gives δ = a − Y only when each sample's targets form a probability
    distribution: refuse targets that do not, rather than return a gradient of another cost."""
    tolerance = 1e-4 if Y.dtype == np.float32 else 1e-9
    sums = Y.sum(axis=axis)
    if Y.size and not (np.all(Y >= 0) and np.all(np.abs(sums - 1) <= tolerance)):
        sample = "column" if axis == 0 else "row"
        worst = int(np.argmax(np.abs(sums - 1))) if sums.size else 0
        raise ArgumentError(f"Y: softmax cross-entropy needs each target {sample} to be a probability distribution "
                            f"(entries ≥ 0 summing to 1); {sample} {worst} sums to {float(sums.flat[worst]):.6g}")


_SUPPORT = (_check_arguments, _bound_sizes, _data, _mask, _learning_rate, _scalar, _distributions, _random_parameters)
#: the in-place step's support, copied only into a module whose step_inplace uses it
_IN_PLACE_SUPPORT = (_new_workspace, _blas, _numpy_cblas, _scipy_blas, _blas_agrees, _commit,
                     _distributions_into)

# --- the program -----------------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    """One generated function: the template writes ``def name(signature):``, the docstring and the body."""

    name: str
    signature: str
    doc: str
    body: tuple[str, ...]

    @property
    def call(self) -> str:
        return f"{self.name}({self.signature})"


@dataclass(frozen=True)
class _Product:
    """A weight's update ``lr c A B`` as printed pieces: ``left operator right``, then maybe ``*= lr``."""

    left: str
    right: str
    operator: str
    scale_after: bool
    reads: tuple[str, ...]


@dataclass(frozen=True)
class _Statement:
    """Lines of a function body: ``target`` is the name they define (None: they define none), ``reads``
    the names and symbols they use, for ordering and for dropping what a function does not need."""

    target: str | None
    code: str
    reads: tuple[str, ...]


_LR = sympy.Symbol("lr", positive=True)
_DATA_ARGUMENTS = {"forward": "params, X", "cost": "params, X, Y", "gradients": "params, X, Y",
                   "step": "params, X, Y, lr", "step_inplace": "params, X, Y, lr"}
_FIXED_NAMES = {"np", "params", "lr", "seed", "dtype", "sizes", "X", "Y", "PARAMS", "SHAPES", "FIXED", "DATA_SHAPES",
                "FAN_IN", "ShapeError", "ArgumentError", *_DATA_ARGUMENTS, "init_params",
                *(f.__name__ for f in _SUPPORT), *(f.__name__ for f in _IN_PLACE_SUPPORT), *WORKSPACE_NAMES}


def _shape_constant(shape) -> tuple[int | str, ...]:
    return tuple(int(d) if d.is_Integer else str(d) for d in shape)


class _Generator:
    """Prints a derivation's quantities once and assembles the functions from them."""

    #: whether the functions refuse targets that are not distributions when δ = a − y assumed them
    checks_distributions = True

    #: the printer of the target; a target's generator subclass names its own
    printer_class: type = NumPyCodePrinter
    #: each function's arguments before the keyword-only scalars
    arguments: Mapping[str, str] = _DATA_ARGUMENTS

    def __init__(self, derivation: Derivation) -> None:
        self.d = derivation
        self.p = derivation.program
        self.plan = make_plan(derivation)
        X = next(i for i in self.p.inputs if i.role == "input")
        #: the axis of X that holds the words, when X is an embedding's one-hot input (code takes ids too)
        self.one_hot = (0 if self.p.layout == "columns" else 1) if X.kind == "one_hot" else None
        one_hot = {} if self.one_hot is None else {X.name: (self.one_hot, X.shape[self.one_hot])}
        self.printer = self.printer_class({"outputs": self.plan.outputs, "one_hot": one_hot})
        #: dropout masks and other data inputs, given as keyword arguments
        self.data_inputs = [i for i in self.p.inputs if i.role == "data"]
        #: the symbolic counts of entries normalised together (a batch), checked to be at least 2
        self.normalised_counts = list(dict.fromkeys(
            node.count for d in self.p.definitions for node in walk(d.expr)
            if isinstance(node, Normalize) and node.count.is_Symbol))
        self.params = self.plan.params
        self.scalars: dict[str, sympy.Symbol] = {}  # every scalar symbol printed: sizes, lr, weight decay
        self.sizes = self._size_sources()
        # the plan's quantities printed once each, in its order
        self.statements = [self._fixed(q.expr) if q.kind == "fixed" else self._statement(q.target, q.expr)
                           for q in self.plan.quantities]

    def _size_sources(self) -> dict[str, str]:
        """Each symbolic size → the code that reads it from the arrays (``X.shape[1]``)."""
        sources: dict[str, str] = {}
        arrays = [(naming.INPUT, self.d.symbols[naming.INPUT].shape)]
        arrays += [(name, self.d.symbols[name].shape) for name in self.params]
        arrays.append((naming.TARGET, self.d.symbols[naming.TARGET].shape))
        for name, shape in arrays:
            for axis, size in enumerate(shape):
                if not size.is_Symbol:
                    continue
                if name == naming.INPUT and self.one_hot is not None:
                    if axis == self.one_hot:
                        continue  # ids have no vocabulary axis: E's shape gives it
                    # the samples: the last axis of one-hot columns or of ids, the first of one-hot rows
                    sources.setdefault(self.printer.doprint(size), f"{name}.shape[{-1 if axis == 1 else 0}]")
                    continue
                sources.setdefault(self.printer.doprint(size), f"{name}.shape[{axis}]")
        return sources

    def _fixed(self, parameter) -> _Statement:
        """A fixed parameter: its value from ``FIXED``, in the arrays' dtype, at its shape."""
        shape = "(" + ", ".join(self.printer.doprint(d) for d in parameter.shape) + ",)"
        reads = tuple(str(d) for d in parameter.shape if d.is_Symbol)
        code = (f"{parameter.name} = np.broadcast_to(np.asarray(FIXED[{parameter.name!r}], dtype=X.dtype), "
                f"{shape})")
        return _Statement(parameter.name, code, reads)

    def print(self, expr, full: bool = True) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """``expr`` printed (with its full shape, or narrow where it meets a full array), with the
        matrix names and scalar symbols it reads."""
        self.printer.names.clear()
        self.printer.symbols.clear()
        code = self.printer.full(expr) if full else self.printer.doprint(expr)
        self.scalars.update(self.printer.symbols)
        return code, tuple(self.printer.names), tuple(self.printer.symbols)

    def _statement(self, target: str, expr) -> _Statement:
        """``target = expr``; a sum or Hadamard product that holds a matrix product starts from that new
        array and adds or multiplies the rest into it (``z1 = W1 @ X`` then ``z1 += b1``): one temporary fewer."""
        operator = "+=" if isinstance(expr, MatAdd) else "*=" if isinstance(expr, HadamardProduct) else None
        first = next((i for i, term in enumerate(expr.args) if self.printer.is_product(term)), None) \
            if operator else None
        if first is None:
            code, names, symbols = self.print(expr)
            return _Statement(target, f"{target} = {code}", names + symbols)
        code, names, symbols = self.print(expr.args[first])
        lines, reads = [f"{target} = {code}"], [*names, *symbols]
        for term in expr.args[:first] + expr.args[first + 1:]:
            if operator == "+=" and is_negative_term(term):
                code, names, symbols = self.print(scaled(-1, term), full=False)
                lines.append(f"{target} -= {code}")
            else:
                code, names, symbols = self.print(term, full=False)
                lines.append(f"{target} {operator} {code}")
            reads += [*names, *symbols]
        return _Statement(target, "\n".join(lines), tuple(reads))

    def needed(self, reads) -> list[_Statement]:
        """The statements, in order, that compute what ``reads`` mentions, directly or not."""
        wanted = set(reads)
        chosen = []
        for statement in reversed(self.statements):
            if statement.target in wanted:
                chosen.append(statement)
                wanted.update(statement.reads)
        return chosen[::-1]

    # --- functions ----------------------------------------------------------------------

    def function(self, name: str, doc: str, result: list[_Statement], in_place: bool = False) -> Function:
        """A function computing ``result``, preceded by the checks and the statements it needs."""
        reads = [r for s in result for r in s.reads]
        body = self.needed(reads)
        if in_place:
            # every value an update needs is computed before any parameter changes: an update reads
            # only its own parameter, so no update can see another's new value
            result = [s for s in result if s.target is not None] + [s for s in result if s.target is None]
        body = body + result
        everything = [r for s in body for r in s.reads]
        hyper = [r for r in dict.fromkeys(everything) if r in self.scalars and r not in self.sizes and r != "lr"]
        masks = [i for i in self.data_inputs if i.name in everything]
        for mask in masks:
            everything += [str(d) for d in mask.shape if d.is_Symbol]
        arguments = self.arguments[name]
        # a dropout mask may be left out (evaluation mode); another given matrix may not
        keywords = [*hyper, *(m.name for m in masks if m.kind != "mask"), *(f"{m.name}=None" for m in masks
                                                                            if m.kind == "mask")]
        signature = arguments + (", *, " + ", ".join(keywords) if keywords else "")
        has_y = "Y" in arguments
        unpack = ", ".join([*self.params, naming.INPUT, *([naming.TARGET] if has_y else [])])
        lines = []
        if "lr" in arguments:
            lines.append("lr = _learning_rate(lr)")
        lines += [f"{h} = _scalar({h!r}, {h})" for h in hyper]
        options = (", True" if in_place else "") + (f", one_hot={self.one_hot}" if self.one_hot is not None
                                                             else "")
        lines.append(f"{unpack} = _check_arguments(params, X, {'Y' if has_y else 'None'}, SHAPES, DATA_SHAPES"
                     f"{options})")
        if has_y and self.d.assumptions and self.checks_distributions:  # δ = a − y needs distributions
            lines.append(f"_distributions(Y, {0 if self.p.layout == 'columns' else 1})")
        lines += [f"{size} = {source}" for size, source in self.sizes.items() if size in everything]
        for count in self.normalised_counts:
            if str(count) in self.sizes and any(r == str(count) for r in everything):
                lines += [f"if {count} < 2:",
                          f"    raise ShapeError(f\"a normalisation over {count} = {{{count}}} entries makes every x̂ 0; "
                          f"give at least 2 (a batch of 1 cannot be batch-normalised)\")"]
        for mask in masks:
            shape = "(" + ", ".join(self.printer.doprint(d) for d in mask.shape) + ",)"
            lines.append(self.given(mask, shape))
        for statement in body:
            lines += statement.code.splitlines()
        return Function(name, signature, doc, tuple(lines))

    def given(self, item, shape: str) -> str:
        """The line that checks a data input given as a keyword: a dropout mask (None: evaluation mode), or
        another given matrix of a written model."""
        like = self.params[0]
        if item.kind == "mask":
            return f"{item.name} = _mask({item.name!r}, {item.name}, {shape}, {like}.dtype, {item.rate!r})"
        return f"{item.name} = _data({item.name!r}, {item.name}, {shape}, {like}.dtype)"

    def _returning(self, entries: dict[str, str], reads: list[str]) -> _Statement:
        lines = ["return {", *(f'    "{name}": {code},' for name, code in entries.items()), "}"]
        return _Statement(None, "\n".join(lines), tuple(reads))

    def forward(self) -> Function:
        output = self.d.output.name
        return self.function("forward", "The network's output a⁽ᴸ⁾ for the inputs X.",
                             [_Statement(None, f"return {output}", (output,))])

    def cost(self) -> Function:
        code, names, symbols = self.print(numpy_cost(self.d))
        return self.function("cost", "The cost C at ``params`` for inputs X and targets Y (a NumPy scalar).",
                             [_Statement(None, f"return {code}", names + symbols)])

    def gradients(self) -> Function:
        entries, reads = {}, []
        for name, gradient in self.d.gradients.items():
            entries[name], names, symbols = self.print(gradient)
            reads += [*names, *symbols]
        return self.function("gradients", "∂C/∂W⁽¹⁾, ∂C/∂b⁽¹⁾, … at ``params``: a dict of arrays shaped like ``params``.",
                             [self._returning(entries, reads)])

    def step(self) -> Function:
        """New arrays; a weight's new value is written over its freshly made update (one array, not three)."""
        statements, entries, reads = [], {}, []
        for name, gradient in self.d.gradients.items():
            product = self._scaled_product(gradient)
            if product is None:
                entries[name], names, symbols = self.print(MatAdd(self.d.symbols[name], scaled(-_LR, gradient)))
                reads += [*names, *symbols]
                continue
            work = naming.next_value(name)
            lines = [f"{work} = {product.left} {product.operator} {product.right}",
                     *([f"{work} *= lr"] if product.scale_after else []), f"np.subtract({name}, {work}, out={work})"]
            statements.append(_Statement(work, "\n".join(lines), (*product.reads, name)))
            entries[name] = work
            reads.append(work)
        return self.function("step", "One step of gradient descent: a new dict, each parameter minus lr times its gradient.",
                             statements + [self._returning(entries, reads)])

    def step_inplace(self) -> Function:
        """The in-place step of :mod:`.fused`: a workspace per signature, updates fused into BLAS calls."""
        lowering = InPlaceStep(self)
        body = lowering.build()
        self.in_place = lowering
        hyper = [r for r in lowering.reads if r in self.scalars and r not in self.sizes and r != "lr"]
        # dropout masks and other given matrices, as the other functions take them (see ``function``)
        masks = [i for i in self.data_inputs if i.name in lowering.reads]
        keywords = [*hyper, *(m.name for m in masks if m.kind != "mask"),
                    *(f"{m.name}=None" for m in masks if m.kind == "mask")]
        signature = self.arguments["step_inplace"] + (", *, " + ", ".join(keywords) if keywords else "")
        passed = "".join(f", {name}={name}" for name in [*hyper, *(m.name for m in masks)])
        lines = ["lr = _learning_rate(lr)", *(f"{h} = _scalar({h!r}, {h})" for h in hyper)]
        doc = ("One step of gradient descent that updates the arrays in ``params`` in place; returns None.\n\n"
               "Every z, a and δ goes to a buffer of a workspace made on the first call for these shapes and\n"
               "dtype (one per thread), and each update is written into its parameter by BLAS\n"
               "(W ← W − lr δ aᵀ as one GEMM); a later call allocates nothing.  Every check runs, and every\n"
               "δ is computed, before any parameter changes: a step that fails changes nothing.")
        if self.one_hot is not None:  # word ids or one-hot samples: the plain step, copied in
            lines += [f"_check_arguments(params, X, Y, SHAPES, DATA_SHAPES, True, one_hot={self.one_hot})",
                      f"_commit(params, step(params, X, Y, lr{passed}))"]
            return Function("step_inplace", signature, doc.split("\n\n")[0] + "\n\nIt runs ``step`` and "
                            "copies the new values in, once every check has passed.", tuple(lines))
        check = self.d.assumptions and self.checks_distributions
        if check:
            axis = 0 if self.p.layout == "columns" else 1
            rows, cols = self.d.symbols[naming.TARGET].shape
            shape = (sympy.Integer(1), cols) if axis == 0 else (rows, sympy.Integer(1))
            lowering._entry("float", "_ysum", lowering._shape(shape))
        needed = set(lowering.reads) | {str(d) for m in masks for d in m.shape if d.is_Symbol}
        sizes = [size for size in self.sizes if size in needed]
        # the workspace's signature: the checks ran when it was made, for arrays of these shapes and flags
        # a workspace per thread: its buffers, and the addresses its calls read, are one call's at a time
        signature_parts = ["len(params)", "X.shape", "X.dtype", "Y.shape", "Y.dtype", "_thread_id()"]
        for name in self.params:
            signature_parts += [f"{name}.shape", f"{name}.dtype", f"{name}.flags.carray"]
        lines += ["try:",
                  f"    {', '.join(self.params)} = {', '.join(f'params[{name!r}]' for name in self.params)}",
                  f"    key = ({', '.join(signature_parts)})",
                  "except (TypeError, KeyError, AttributeError):",
                  "    key = None",
                  "w = _WORKSPACES.get(key)",
                  "if w is None:",
                  "    w = _new_workspace(params, X, Y, key)",
                  "    if w is None:  # arrays the fast path cannot take: the plain step, copied in",
                  f"        _commit(params, step(params, X, Y, lr{passed}))",
                  "        return None",
                  f"{', '.join(lowering.entries)}{',' if len(lowering.entries) == 1 else ''} = w"]
        lines += [f"{size} = {self.sizes[size]}" for size in sizes]
        for count in self.normalised_counts:
            if str(count) in sizes:
                lines += [f"if {count} < 2:",
                          f"    raise ShapeError(f\"a normalisation over {count} = {{{count}}} entries makes every x̂ 0; "
                          f"give at least 2 (a batch of 1 cannot be batch-normalised)\")"]
        for mask in masks:
            shape = "(" + ", ".join(self.printer.doprint(d) for d in mask.shape) + ",)"
            if mask.kind == "mask":
                lines.append(f"{mask.name} = _mask({mask.name!r}, {mask.name}, {shape}, {self.params[0]}.dtype, "
                             f"{mask.rate!r})")
            else:
                lines.append(f"{mask.name} = _data({mask.name!r}, {mask.name}, {shape}, {self.params[0]}.dtype)")
        if check:
            lines.append(f"_distributions_into(Y, {axis}, _ysum)")
        lines += body
        return Function("step_inplace", signature, doc, tuple(lines))

    def _scaled_product(self, gradient) -> "_Product | None":
        """A gradient ``c A B`` of two matrices, printed so that the learning rate scales the smaller array:
        the factor ``A`` (activation-sized), or the product when sizes known here show ``A`` is larger."""
        if not self.printer.is_product(gradient):
            return None
        matrices = [a for a in gradient.args if a.is_Matrix]
        if len(matrices) != 2:
            return None
        coefficient = sympy.Mul(*(a for a in gradient.args if not a.is_Matrix))
        sizes = [sympy.Mul(*m.shape) for m in (matrices[0], gradient)]
        after = all(n.is_Integer for n in sizes) and sizes[0] > sizes[1]
        left, left_names, left_symbols = self.print(scaled(coefficient if after else _LR * coefficient, matrices[0]))
        right, right_names, right_symbols = self.print(matrices[1])
        return _Product(left, self.printer._operand(matrices[1], right), self.printer.product_operator(matrices[0]),
                        after, (*left_names, *left_symbols, *right_names, *right_symbols))

    def init_params(self) -> Function:
        sizes = sorted({d for p in self.p.trained for d in _shape_constant(p.shape) if isinstance(d, str)})
        example = ", ".join(f"{s}=4" for s in sizes)
        return Function("init_params", "seed=0, dtype=np.float64, **sizes",
                        "Random parameters: weights from N(0, 1/fan-in), biases zero"
                        + (f"; give the sizes, e.g. ``init_params(0, {example})``." if sizes else "."),
                        ("return _random_parameters(SHAPES, FAN_IN, seed, dtype, sizes)",))


def _runtime_helpers(names) -> list[str]:
    """The source of the runtime helpers ``names`` and of those they call, in the runtime module's order."""
    defined = [name for name, value in vars(runtime).items() if inspect.isfunction(value)]
    wanted, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name not in wanted:
            wanted.add(name)
            calls = {i.argval for i in dis.get_instructions(getattr(runtime, name)) if i.opname == "LOAD_GLOBAL"}
            stack.extend(n for n in defined if n in calls)
    return [inspect.getsource(getattr(runtime, name)).rstrip("\n") for name in defined if name in wanted]


def _custom_helper(printer: NumPyCodePrinter, name: str, variable: sympy.Symbol, expression) -> Function:
    """A custom activation (or a derivative of it) as a function of one array."""
    others = expression.free_symbols - {variable}
    if len(others) == 1:  # SymPy writes Lambda(x, x) with a variable of its own (a Dummy): it is x all the same
        expression = expression.xreplace({others.pop(): variable})
    code = printer.doprint(expression)
    argument = printer.doprint(variable)
    foreign = [module for module in printer.module_imports if module != "numpy"]
    if foreign or printer._not_supported:
        what = ", ".join(sorted(map(str, printer._not_supported))) or f"{expression} (it needs {', '.join(foreign)})"
        raise SpecError(f"the activation {name.split('_grad')[0]!r} uses {what}, which NumPy does not provide; "
                        f"symbackprop cannot generate NumPy code for it")
    if expression == variable:  # the identity, written some other way (2*x/2): a new array, as for any other
        code = f"np.copy({argument})"
    elif not expression.has(variable):  # a constant: still one value per entry
        code = f"np.full_like({argument}, {code})"
    elif expression.has(Piecewise):  # np.select would promote float32 to float64
        code = f"np.asarray({code}, dtype={argument}.dtype)"
    return Function(name, argument, f"{expression}, entry by entry.", (f"return {code}",))


@dataclass(frozen=True)
class Program:
    """What the module template needs: printed code and constants, no mathematics left to do."""

    summary: str
    derivation: tuple[str, ...]
    params: tuple[str, ...]
    shapes: tuple[tuple[str, tuple], ...]
    fixed: tuple[tuple[str, object], ...]
    data_shapes: tuple[tuple[str, tuple], ...]
    fan_in: dict[str, int]
    helpers: tuple[str, ...]
    functions: tuple[Function, ...]
    layout_note: str
    #: module-level constants of the in-place step (its workspace), one line each
    workspace: tuple[str, ...] = ()


_EXPORTS = ("PARAMS", "SHAPES", "forward", "cost", "gradients", "step", "step_inplace", "init_params")


def program(derivation: Derivation) -> Program:
    """The printed pieces of the NumPy module for ``derivation``."""
    if not isinstance(derivation, Derivation):
        raise SpecError(f"code generation takes a Derivation, not {type(derivation).__name__}")
    g = _Generator(derivation)
    model = derivation.program
    api = [g.forward(), g.cost(), g.gradients(), g.step(), g.step_inplace(), g.init_params()]
    custom = [_custom_helper(g.printer, name, variable, expression)
              for name, (variable, expression) in sorted(g.printer.custom.items())]
    helpers = _runtime_helpers(g.printer.helpers) + in_place_helpers(g.in_place.helpers)
    _check_names(g, [h.split("(")[0].removeprefix("def ") for h in helpers], custom)
    columns = model.layout == "columns"
    support = [*_SUPPORT, *_IN_PLACE_SUPPORT]
    return Program(
        summary=f"Backpropagation for {model.title}.",
        derivation=tuple(derivation.text().rstrip("\n").splitlines()),
        params=g.params,
        shapes=tuple((p.name, _shape_constant(p.shape)) for p in model.trained),
        fixed=tuple((p.name, p.value.tolist() if hasattr(p.value, "tolist") else p.value) for p in model.fixed),
        data_shapes=tuple((name, _shape_constant(derivation.symbols[name].shape))
                          for name in (naming.INPUT, naming.TARGET)),
        fan_in={p.name: p.fan_in for p in model.trained if p.init == "weight"},
        helpers=tuple(helpers + [inspect.getsource(f).rstrip("\n") for f in support]),
        functions=(*custom, *api),
        layout_note="samples are columns: X is features × samples" if columns
        else "samples are rows: X is samples × features",
        workspace=g.in_place.constants(),
    )


def _check_names(generator: _Generator, helpers: list[str], custom: list[Function]) -> None:
    """Sizes, weight-decay symbols and custom activations must not take a name the module already uses."""
    module = _FIXED_NAMES | set(helpers)
    local = {*generator.params, *(s.target for s in generator.statements), *map(naming.scaled_gradient, generator.params),
             *map(naming.next_value, generator.params)}
    for function in custom:
        if function.name in module | local | generator.scalars.keys() or function.name in dir(builtins):
            raise SpecError(f"the custom activation name {function.name!r} is a name the generated NumPy code "
                            f"uses; give the activation another name")
    symbols = [*generator.p.size_symbols, *generator.p.scalars]
    for name in (generator.printer.doprint(symbol) for symbol in symbols):
        if name in module | local:
            raise SpecError(f"the symbol {name!r} is a name the generated NumPy code uses; rename it")


def module_source(derivation: Derivation) -> str:
    """The text of a standalone NumPy module for ``derivation`` (byte-identical for the same input).

    >>> from symbackprop import Dense, Network, derive
    >>> source = module_source(derive(Network(3, [Dense(2, "tanh")], batch="m")))
    >>> "def gradients(params, X, Y):" in source and "import numpy as np" in source
    True
    """
    from .. import __version__

    p = program(derivation)
    env = environment()
    env.filters["pyrepr"] = repr
    template = env.get_template("numpy_module.py.j2")
    return template.render(
        summary=p.summary, version=__version__, params=p.params, layout_note=p.layout_note,
        derivation=p.derivation, functions=p.functions, exports=_EXPORTS, shapes=p.shapes, fixed=p.fixed,
        data_shapes=p.data_shapes, fan_in=p.fan_in, helpers=p.helpers, workspace=p.workspace,
    )


def run_generated(source: str, target: str) -> tuple[str, dict]:
    """Run a generated module's ``source`` in this process: its file name and its namespace.

    The source is registered with ``linecache`` so tracebacks show its lines; the
    module's own ShapeError and ArgumentError are replaced by the library's.
    """
    filename = f"<symbackprop {target} {hashlib.sha256(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    suffix = "" if target == "numpy" else f"_{target}"
    namespace: dict = {"__name__": f"symbackprop_generated{suffix}"}
    exec(compile(source, filename, "exec"), namespace)  # our own generated code, never user text
    namespace.update(ShapeError=ShapeError, ArgumentError=ArgumentError)  # the library's classes in-process
    return filename, namespace


class UpdateFunctions:
    """The generated functions of a derivation, compiled in this process.

    ``forward(params, X)``, ``cost(params, X, Y)``, ``gradients(params, X, Y)``,
    ``step(params, X, Y, lr)`` (a new dict), ``step_inplace(params, X, Y, lr)``
    (updates the caller's arrays) and ``init_params(seed=0, dtype=np.float64,
    **sizes)``; ``params`` is a dict keyed like :attr:`Derivation.gradients`.
    A weight-decay symbol (``"lam"``) is a keyword argument of ``cost``,
    ``gradients`` and the steps.  Bad arguments raise
    :class:`~symbackprop.errors.ShapeError` or :class:`~symbackprop.errors.TrainingError`.
    ``source`` is the module's text; tracebacks show its lines.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.filename, namespace = run_generated(source, "numpy")
        self.namespace = namespace
        self.params: tuple[str, ...] = namespace["PARAMS"]
        self.shapes: Mapping[str, tuple] = namespace["SHAPES"]
        self.data_shapes: Mapping[str, tuple] = namespace["DATA_SHAPES"]
        self.forward: Callable = namespace["forward"]
        self.cost: Callable = namespace["cost"]
        self.gradients: Callable = namespace["gradients"]
        self.step: Callable = namespace["step"]
        self.step_inplace: Callable = namespace["step_inplace"]
        self.init_params: Callable = namespace["init_params"]

    def __repr__(self) -> str:
        return f"<UpdateFunctions for {', '.join(self.params)}>"


def compile_numpy(derivation: Derivation) -> UpdateFunctions:
    """The generated NumPy functions of ``derivation``, ready to call (see :class:`UpdateFunctions`)."""
    return UpdateFunctions(module_source(derivation))


"""Argument checks copied into every PyTorch and JAX module: written once here, for both engines.

These functions are never called in this module: :func:`sources` gives their
text, which :func:`~._python.tensor_program` copies into each generated
module beside the engine's own few definitions (in :mod:`.torch` and
:mod:`.jax`), which say what the engine's arrays are:

* ``_ARRAY`` and ``_KIND`` — the words for one array (``"tensor"``) and for what
  all parameters must share (``"dtype and device"``);
* ``_parameter(name, value)`` — ``value`` as a floating array of the engine, or an
  ``ArgumentError`` naming ``name``;
* ``_kind(array)`` — what must be the same in every parameter, as text;
* ``_data(name, value, like)`` — X or Y as an array of ``like``'s dtype (and device);
* ``_traced(value)`` — whether ``value`` is traced (under ``jax.jit``), so that no
  number can be read from it;
* ``_item(value)`` — a one-entry array as its Python number, anything else as it is;
* ``_ids(value, like)`` — an embedding's X as a 1-d integer array of word ids (on ``like``'s
  device), None when it is not 1-d (then it is one-hot samples), or an ``ArgumentError`` for
  a 1-d array of anything but integers.

They raise the module's ``ShapeError`` and ``ArgumentError`` (the library's
when run in-process).
"""

from __future__ import annotations

import inspect

__all__ = ["sources"]


def _check_arguments(params, X, Y, shapes, data_shapes, in_place=False, one_hot=None):
    """The parameters in the order of ``shapes``, then X (and Y) converted to the parameters' dtype (and device).

    Checks the parameter names, that each is a floating array of the engine and that
    all share one dtype (and device), then every shape (a size given as a name is
    bound by the first array that has it).  Shapes are static: this runs under jit too.
    With ``one_hot`` (the axis of X that holds the words), X is one-hot samples or a
    1-d array of integer word ids, which stay integers; their values are checked
    unless traced (under jit the caller checks them).
    """
    if not isinstance(params, dict):
        raise ArgumentError(f"params must be a dict of {_ARRAY}s keyed {', '.join(shapes)}, "
                            f"not {type(params).__name__}")
    if params.keys() != shapes.keys():
        missing = [name for name in shapes if name not in params]
        unknown = [str(name) for name in params if name not in shapes]
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else [])
        raise ArgumentError(f"params: {'; '.join(problems)}; expected {', '.join(shapes)}")
    arrays = [_parameter(name, params[name]) for name in shapes]
    first, like = next(iter(shapes)), arrays[0]
    for name, array in zip(shapes, arrays):
        if _kind(array) != _kind(like):
            raise ArgumentError(f"{name}: {_kind(array)} differs from {first}'s {_kind(like)}; "
                                f"give every parameter the same {_KIND}")
    data = {"X": X} if Y is None else {"X": X, "Y": Y}
    ids = None if one_hot is None else _ids(X, like)
    for name, value in data.items():
        data[name] = ids if name == "X" and ids is not None else _data(name, value, like)
    x_shape = data_shapes["X"] if ids is None else (data_shapes["X"][1 - one_hot],)  # ids: one per sample
    checked = [("X", data["X"], x_shape), *zip(shapes, arrays, shapes.values())]
    if Y is not None:
        checked.append(("Y", data["Y"], data_shapes["Y"]))
    sizes = _bound_sizes(checked, _ARRAY)
    if one_hot is not None and not _traced(data["X"]):
        _words(data["X"], ids is not None, one_hot, sizes.get(data_shapes["X"][one_hot], data_shapes["X"][one_hot]))
    return (*arrays, *data.values())


def _bound_sizes(checked, array="array"):
    """Each (name, array, expected shape) of ``checked`` checked in turn: its number of axes, that it is not
    empty, and each size (a size given as a name is bound by the first array that has it); the sizes bound.

    Written once for the NumPy module and the PyTorch and JAX ones; ``array`` is the engine's word for one.
    """
    sizes, bound_by = {}, {}
    for name, value, expected in checked:
        given = tuple(value.shape)
        if len(given) != len(expected):
            raise ShapeError(f"{name}: expected a {len(expected)}-d {array} of shape "
                             f"({', '.join(map(str, expected))}), given shape {given}")
        if 0 in given:
            raise ShapeError(f"{name}: an empty {array} (shape {given}); give at least one sample and one "
                             f"value per row")
        for size, actual in zip(expected, given):
            known = sizes.setdefault(size, actual) if isinstance(size, str) else size
            if known != actual:
                shown = ", ".join(str(sizes.get(s, s)) for s in expected)
                source = f" ({size} = {known} from {bound_by[size]})" if size in bound_by else ""
                raise ShapeError(f"{name}: expected shape ({shown}){source}, given {given}")
            if isinstance(size, str):
                bound_by.setdefault(size, name)
    return sizes


def _words(X, ids, axis, vocab):
    """An embedding's X checked: ids from 0 to vocab − 1, or one-hot samples along ``axis``."""
    if ids:
        low, high = int(X.min()), int(X.max())
        if low < 0 or high >= vocab:
            raise ArgumentError(f"X: word ids must be from 0 to {vocab - 1} (the vocabulary has {vocab} words); "
                                f"given ids from {low} to {high}")
    elif not (bool(((X == 0) | (X == 1)).all()) and bool((X.sum(axis) == 1).all())):
        sample = "column" if axis == 0 else "row"
        raise ArgumentError(f"X: the embedding takes one-hot samples (each {sample} a single 1, zeros "
                            f"elsewhere) or a 1-d {_ARRAY} of integer word ids")


def _given(name, value, shape, like):
    """Another given matrix of a written model (beside X and Y), as an array of ``like``'s dtype (and device)."""
    array = _data(name, value, like)
    if tuple(array.shape) != tuple(shape):
        raise ShapeError(f"{name}: expected shape {tuple(shape)}, given shape {tuple(array.shape)}")
    return array


def _mask(name, mask, shape, like, rate):
    """A dropout mask of 0s and 1s as an array of ``like``'s dtype (and device); None is evaluation mode:
    the number 1 − p, so that the layer's M ⊙ x / (1 − p) passes x through.  Traced (under jit), its
    entries are the caller's to check; its shape is checked always."""
    if mask is None:
        return 1 - rate
    array = _data(name, mask, like)
    if tuple(array.shape) != tuple(shape):
        raise ShapeError(f"{name}: expected a dropout mask of shape {tuple(shape)}, given shape "
                         f"{tuple(array.shape)}")
    if not _traced(array) and not bool(((array == 0) | (array == 1)).all()):
        raise ArgumentError(f"{name}: a dropout mask holds only 0 (dropped) and 1 (kept)")
    return array


def _number(name, value, what):
    """``value`` as a Python float (so it never changes the arrays' dtype), or None for a value traced
    under jit, which has no number to check; ``what`` names what was expected."""
    if _traced(value):
        return None
    number = _item(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise ArgumentError(f"{name}: expected {what}, given {type(value).__name__} {value!r}")
    try:
        return float(number)
    except OverflowError:  # a Python int beyond float64
        raise ArgumentError(f"{name}: expected {what}, given a whole number beyond float64's range") from None


def _learning_rate(lr):
    """``lr`` checked positive and finite, as a Python float (a value traced under jit as it is)."""
    number = _number("lr", lr, "a positive number")
    if number is None:
        return lr
    if not 0 < number < float("inf"):
        raise ArgumentError(f"lr: the learning rate must be a positive finite number, given {lr}")
    return number


def _scalar(name, value):
    """A scalar setting such as a weight decay, as a Python float: finite and not negative (traced: as it is)."""
    number = _number(name, value, "a number")
    if number is None:
        return value
    if not 0 <= number < float("inf"):
        raise ArgumentError(f"{name}: expected a finite number ≥ 0, given {value!r}")
    return number


def _distributions(Y, axis):
    """Softmax with cross-entropy gives δ = a − Y only when each sample's targets form a probability
    distribution: refuse targets that do not, rather than return a gradient of another cost.

    Under jit the targets are traced, not known, and no error can be raised from their
    values: there the check is the caller's (call the function once without jit).
    """
    if _traced(Y):
        return
    tolerance = {8: 1e-9, 4: 1e-4}.get(Y.dtype.itemsize, 1e-2)  # float64, float32, 16-bit floats
    sums = Y.sum(axis)
    off = abs(sums - 1)
    if float(Y.min()) >= 0 and float(off.max()) <= tolerance:  # the common case: five small operations
        return
    sample = "column" if axis == 0 else "row"
    below = (Y - abs(Y)).sum(axis)  # twice each sample's negative entries, summed
    if float(below.min()) < 0:
        found = f"{sample} {int(below.argmin())} has an entry below 0"
    else:
        worst = int(off.argmax())
        found = f"{sample} {worst} sums to {float(sums[worst]):.6g}"
    raise ArgumentError(f"Y: softmax cross-entropy needs each target {sample} to be a probability "
                        f"distribution (entries ≥ 0 summing to 1); {found}")


def _concrete_shapes(shapes, sizes):
    """Each parameter's shape with the given sizes in place of their names, the sizes checked first."""
    needed = sorted({size for shape in shapes.values() for size in shape if isinstance(size, str)})
    missing = [size for size in needed if size not in sizes]
    if missing:
        raise ShapeError(f"init_params needs the size{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                         f"e.g. init_params(0, {missing[0]}=4)")
    for size in needed:
        value = sizes[size]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ShapeError(f"init_params: the size {size} must be a positive integer, given {value!r}")
    concrete = {name: tuple(sizes[size] if isinstance(size, str) else size for size in shape)
                for name, shape in shapes.items()}
    entries = sum(rows * cols for rows, cols in concrete.values())
    if entries > 2**28:  # 2 GiB of float64, refused before anything is allocated
        largest = max(concrete, key=lambda name: concrete[name][0] * concrete[name][1])
        raise ShapeError(f"init_params: the parameters would have {entries} entries in all ({largest} is "
                         f"{concrete[largest]}); at most {2**28}")
    return concrete


def _seed(seed, bits):
    """``seed`` checked: a whole number ≥ 0 below 2**bits (the engine's generator takes no other)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**bits:
        raise ArgumentError(f"seed: expected a whole number ≥ 0 and below 2**{bits}, given {seed!r}")
    return seed


_SHARED = (_check_arguments, _bound_sizes, _words, _given, _mask, _number, _learning_rate, _scalar, _distributions, _concrete_shapes, _seed)


def sources() -> list[str]:
    """The text of the shared support functions, in this module's order."""
    return [inspect.getsource(function).rstrip("\n") for function in _SHARED]

"""Gradient descent with the generated step: a spec's ``[train]`` table and ``symbackprop train``.

.. code-block:: toml

    [train]
    x = 5.7                 # a number, nested lists, or a .npz/.npy/.csv file next to the spec
    y = 50.1
    init = { W1 = -23.1 }   # per parameter: numbers or "random"; or init = "random" (the default)
    lr = 0.007
    steps = 20              # default 100
    seed = 0                # for "random" initial values
    sizes = { n_1 = 16 }    # symbolic sizes the data do not fix (hidden widths), for "random" values
    batch_size = 32         # mini-batches (default: all samples); the network needs batch = "m"
    epochs = 20             # passes over the data, in place of steps; one log line each
    shuffle = true          # reshuffle every epoch, seeded by seed (the default)
    optimizer = "adam"      # "sgd" (the default, step_inplace), "momentum" or "adam"; momentum, beta1, beta2, eps
    validation = 0.2        # a held-out fraction, or { x = ..., y = ... }

Data are taken in the network's layout (columns: X is features × samples).
A 1-d list is one sample, unless the network has one input (or one output),
when it is one value per sample.  Training runs ``step_inplace`` of the
generated NumPy code (or momentum or Adam on the generated ``gradients``) and
records the cost, the validation cost, the accuracy of a cross-entropy
classifier and the parameters after every step or epoch.

>>> import io, pathlib, tempfile
>>> spec = pathlib.Path(tempfile.mkdtemp()) / "seed.toml"
>>> _ = spec.write_text('''
... [network]
... inputs = 1
... [[layers]]
... units = 1
... bias = false
... [train]
... x = 5.7
... y = 50.1
... init = { W1 = -23.1 }
... lr = 0.007
... steps = 2
... ''')
>>> out = io.StringIO()
>>> _ = train_spec(spec, out=out)
>>> print(out.getvalue(), end="")
step 0  cost 33040  W1 = -23.1
step 1  cost 9818.8  W1 = -8.5948
step 2  cost 2917.9  W1 = -0.68736
"""

from __future__ import annotations

import io
import numbers
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TextIO

import numpy as np
import sympy

from . import naming
from .outputs.codegen import UpdateFunctions
from .derive import derive, program_of
from .errors import OutputError, ShapeError, SymbackpropError, TrainingError
from .model.network import Network
from .outputs.files import check_path, write_outputs
from .spec import Spec, read_spec

__all__ = ["TrainingSetup", "History", "training_setup", "train", "train_spec", "format_step", "plot_history",
           "accuracy", "save_params", "derivation_values"]

_DATA_FILES = (".npz", ".npy", ".csv")
#: the most bytes of data read from one file (a .npz's arrays counted unpacked): 1 GiB
MAX_DATA_BYTES = 2**30


@dataclass(frozen=True)
class TrainingSetup:
    """Everything a training run needs, read and checked from a ``[train]`` table."""

    functions: UpdateFunctions
    X: np.ndarray
    Y: np.ndarray
    params: dict[str, np.ndarray]
    lr: float
    steps: int
    #: samples per update (None: all of them, full-batch gradient descent)
    batch_size: int | None = None
    #: passes over the data; when given, one log line per epoch rather than per step
    epochs: int | None = None
    shuffle: bool = True
    seed: int = 0
    #: "sgd" (the generated step_inplace), "momentum" or "adam"
    optimizer: str = "sgd"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    #: held-out data (None when there is no validation split or file)
    X_val: np.ndarray | None = None
    Y_val: np.ndarray | None = None
    #: "softmax" / "sigmoid" when the cost is a cross-entropy (accuracy is computed), else None
    classifier: str | None = None
    #: the axis of X and Y that counts samples
    axis: int = 1
    #: the derivation the functions were generated from (for the values of named quantities)
    derivation: Any = None


@dataclass
class History:
    """The cost and each parameter after every step; index 0 is the start.

    ``values`` holds, per parameter, its value when it is 1×1 and its Frobenius
    norm otherwise (``scalar`` tells which); ``params`` the parameters after
    the last step.
    """

    costs: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    scalar: dict[str, bool] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    #: "step" or "epoch": what an index counts
    unit: str = "step"
    val_costs: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    val_accuracies: list[float] = field(default_factory=list)
    #: the number of steps (or epochs) done when Ctrl-C stopped the run; None when it ran to the end
    interrupted: int | None = None
    #: per ``--show`` name: its values at the start (None for a parameter) and at the end
    shown: dict[str, tuple] = field(default_factory=dict)

    def record(self, cost: float, params: Mapping[str, np.ndarray]) -> None:
        self.costs.append(float(cost))
        self.params = {name: array.copy() for name, array in params.items()}
        for name, array in params.items():
            self.scalar[name] = array.size == 1
            with np.errstate(over="ignore"):  # entries beyond 1e154 have an infinite norm: shown as inf, no warning
                value = float(array.reshape(-1)[0]) if array.size == 1 else float(np.linalg.norm(array))
            self.values.setdefault(name, []).append(value)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TrainingError(f"{where}: expected a number, given {value!r}")
    return float(value)


def _read_file(value: str, key: str, folder: Path, where: str) -> np.ndarray:
    """An array from a .npz (the array named ``key`` or the only one), .npy or .csv file."""
    path = folder / value
    if path.suffix.lower() not in _DATA_FILES:
        raise TrainingError(f"{where}: {value!r} is neither numbers nor a .npz, .npy or .csv file")
    if not path.is_file():
        raise TrainingError(f"{where}: no such file {str(path)!r}",
                            hint="paths in [train] are relative to the spec file's folder")
    _check_data_file(path, where)
    try:
        with warnings.catch_warnings():  # an empty file is reported below, not warned about
            warnings.simplefilter("ignore")
            if path.suffix.lower() == ".csv":
                array = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
            else:
                loaded = np.load(path, allow_pickle=False)
                if path.suffix.lower() == ".npy":
                    array = loaded
                else:
                    with loaded:
                        names = list(loaded.files)
                        chosen = next((n for n in (key, key.upper()) if n in names),
                                      names[0] if len(names) == 1 else None)
                        if chosen is None:
                            raise TrainingError(f"{where}: {str(path)!r} holds {', '.join(names) or 'no arrays'}; "
                                                f"name one {key!r} or keep a single array in it")
                        array = loaded[chosen]
    except TrainingError:
        raise
    except (OSError, ValueError, EOFError) as err:
        raise TrainingError(f"{where}: cannot read {str(path)!r}: {err}") from None
    if np.iscomplexobj(array) or array.dtype.kind not in "fiub":
        raise TrainingError(f"{where}: {str(path)!r} holds {array.dtype} values; training needs real numbers")
    if array.size == 0:
        raise TrainingError(f"{where}: {str(path)!r} holds no samples")
    return array


def _check_data_file(path: Path, where: str) -> None:
    """Refuse, before NumPy reads it, a data file that is not what its name says or is too large.

    NumPy reads a file by its first bytes, not its name: anything that is neither
    a zip archive nor starts like a .npy file it takes for a pickle, and refuses
    with advice to unpickle it. A .npz's arrays are counted unpacked.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            if not zipfile.is_zipfile(path):
                raise TrainingError(f"{where}: {str(path)!r} is not a .npz file (a zip archive of .npy arrays, "
                                    f"as numpy.savez writes)")
            with zipfile.ZipFile(path) as archive:
                size = sum(member.file_size for member in archive.infolist())
        else:
            size = path.stat().st_size
            if suffix == ".npy":
                with open(path, "rb") as handle:
                    if handle.read(6) != b"\x93NUMPY":
                        raise TrainingError(f"{where}: {str(path)!r} is not a .npy file (as numpy.save writes)")
    except (OSError, zipfile.BadZipFile) as err:
        raise TrainingError(f"{where}: cannot read {str(path)!r}: {err}") from None
    if size > MAX_DATA_BYTES:
        raise TrainingError(f"{where}: {str(path)!r} holds {size} bytes of data; training reads at most "
                            f"{MAX_DATA_BYTES // 2**20} MiB")


def _as_array(value: Any, where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TrainingError(f"{where}: expected numbers or nested lists of numbers (rows of equal length), "
                            f"given {value!r}"[:300]) from None
    if array.size == 0:
        raise TrainingError(f"{where}: holds no samples")
    if not np.all(np.isfinite(array)):
        raise TrainingError(f"{where}: holds a value that is not a finite number")
    return array


def _matrix(array: np.ndarray, shape: tuple, where: str) -> np.ndarray:
    """``array`` as a matrix of ``shape`` (ints and size names): a number is 1×1, a 1-d list fills the side that is not 1."""
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        rows, cols = shape
        if cols == 1:
            return array.reshape(-1, 1)
        if rows == 1:
            return array.reshape(1, -1)
        raise TrainingError(f"{where}: a 1-d list is ambiguous for shape ({rows}, {cols}); give a nested list")
    if array.ndim != 2:
        raise TrainingError(f"{where}: expected a matrix, given an array with {array.ndim} dimensions")
    return array


def _one_hot(ids: np.ndarray, program, where: str) -> np.ndarray:
    """An embedding's word ids as one-hot samples (columns, or rows in the rows layout)."""
    columns = program.layout == "columns"
    vocab = program.input("input").shape[0 if columns else 1]
    if not vocab.is_Integer:
        raise TrainingError(f"{where}: word ids need the vocabulary size as a number, not {vocab}; "
                            f"or give one-hot samples")
    vocab = int(vocab)
    if not (np.issubdtype(ids.dtype, np.integer) or (np.issubdtype(ids.dtype, np.floating)
                                                      and np.all(ids == np.round(ids)))):
        raise TrainingError(f"{where}: an embedding's inputs are word ids (whole numbers) or one-hot samples")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        raise TrainingError(f"{where}: word ids must be from 0 to {vocab - 1} (the vocabulary has {vocab} words); "
                            f"given ids from {ids.min():g} to {ids.max():g}")
    one_hot = np.eye(vocab)[ids.astype(np.int64)]
    return one_hot.T if columns else one_hot


def _data_matrix(array: np.ndarray, functions: UpdateFunctions, name: str, layout: str, where: str) -> np.ndarray:
    """X or Y as a matrix: a number is 1×1; a 1-d list is one value per sample when a sample has one
    value (one input, or one output), else one sample of several."""
    if array.ndim == 0:
        return array.reshape(1, 1)
    if array.ndim == 1:
        rows, cols = functions.data_shapes[name]
        width = rows if layout == "columns" else cols
        per_sample = width == 1
        return array.reshape((1, -1) if per_sample else (-1, 1)) if layout == "columns" else \
            array.reshape((-1, 1) if per_sample else (1, -1))
    if array.ndim != 2:
        raise TrainingError(f"{where}: expected a matrix, given an array with {array.ndim} dimensions")
    return array


#: per data name: what it is, what a sample holds, and the verbs that agree with it
_DATA = {naming.INPUT: ("the input", "inputs", "holds", "has", "looks"),
         naming.TARGET: ("the targets", "outputs", "hold", "have", "look")}


def _check_data(data: Mapping[str, np.ndarray], functions: UpdateFunctions, layout: str, keys: Mapping[str, str],
                network: bool, bound: dict[str, int] | None = None) -> dict[str, int]:
    """Refuse data whose shapes do not fit the network, saying how: transposed, more samples than a fixed
    batch, the wrong number of inputs or outputs, or fewer samples of Y than of X.  Returns the sizes the
    data fix (``bound`` are those fixed before: the training data's, for validation data)."""
    bound = dict(bound or {})
    axis = 1 if layout == "columns" else 0
    sample = "column" if layout == "columns" else "row"
    for name in (naming.INPUT, naming.TARGET):
        expected, given = functions.data_shapes[name], data[name].shape

        def fits(shape: tuple, sides: tuple = (0, 1)) -> bool:
            trial = dict(bound)
            for side in sides:
                size, value = expected[side], shape[side]
                if isinstance(size, str):
                    if trial.setdefault(size, value) != value:
                        return False
                elif size != value:
                    return False
            return True

        if fits(given):
            bound.update({size: value for size, value in zip(expected, given) if isinstance(size, str)})
            continue
        what, widths, holds, has, looks = _DATA[name]
        shown = f"expected {'×'.join(map(str, expected))}, got {given[0]}×{given[1]}"
        if fits(given[::-1]):
            other = "rows" if layout == "columns" else "columns"
            hint = (f'transpose it, or set layout = "{other}" in [network]' if network else
                    "transpose it: [model].inputs gives its shape")
            raise ShapeError(f"{keys[name]}: {what} {name} {looks} transposed ({shown}): the {layout} layout takes "
                             f"a sample per {sample}", hint=hint)
        batch = expected[axis]
        if fits(given, (1 - axis,)) and isinstance(batch, int):
            hint = ('set batch = "m" in [network] to train on any number of samples' if network else
                    'write the samples\' size as a symbol, such as "m", in [model].inputs')
            raise ShapeError(f"{keys[name]}: {what} {name} {holds} {given[axis]} samples, but the network's batch "
                             f"is {batch} ({shown})", hint=hint)
        if not fits(given, (1 - axis,)):
            width = expected[1 - axis]
            count = bound.get(width, width)
            named = f"{width} = {count}" if isinstance(width, str) else str(width)
            per = f"{given[1 - axis]} {widths if given[1 - axis] != 1 else widths[:-1]}"
            raise ShapeError(f"{keys[name]}: {what} {name} {has} {per} per sample, but the "
                             f"network has {named} ({shown}; a sample per {sample})")
        raise ShapeError(f"{keys[name]}: {what} {name} {holds} {given[axis]} samples, but X holds "
                         f"{bound.get(batch, batch)} ({shown}; a sample per {sample})")
    return bound


def training_setup(spec: Spec, *, steps: int | None = None, lr: float | None = None,
                   overrides: Mapping[str, Any] | None = None) -> TrainingSetup:
    """Read and check ``spec``'s ``[train]`` table; ``steps``, ``lr`` and ``overrides`` (keys of the table) override it."""
    where = f"{spec.source}: [train]"
    table = spec.train
    if table is None:
        raise TrainingError(f"{spec.source}: no [train] table; add one with x, y, lr and steps")
    table = {**table, **{key: value for key, value in (overrides or {}).items() if value is not None}}
    given = {key for key, value in (overrides or {}).items() if value is not None}

    def at(key: str) -> str:
        """Where a value came from, for messages: the option typed, or the spec's key."""
        return f"--{key.replace('_', '-')}" if key in given else f"{where}.{key}"

    if steps is not None and (overrides or {}).get("epochs") is None:
        table.pop("epochs", None)  # --steps counts steps, not epochs
    program = program_of(spec.model)
    if program.scalars:
        what = "weight_decay is the symbol" if isinstance(spec.model, Network) else "the model uses the scalar"
        raise TrainingError(f"{spec.source}: {what} {program.scalars[0]}; training needs a number")
    for key in ("x", "y"):
        if key not in table:
            raise TrainingError(f"{where} needs the key {key!r} (numbers, nested lists or a .npz/.npy/.csv file)")
    derivation = derive(program)
    functions = derivation.numpy()
    others = [i.name for i in program.inputs if i.role == "data" and i.kind != "mask"]
    if others:
        raise TrainingError(f"{where}: the model reads the input{'s' if len(others) > 1 else ''} "
                            f"{', '.join(others)} besides X and Y, which training does not give; make "
                            f"{'them parameters' if len(others) > 1 else 'it a parameter'} (fixed, if not trained)")

    data = {}
    for key, name in (("x", naming.INPUT), ("y", naming.TARGET)):
        value = table[key]
        array = _as_array(_read_file(value, key, spec.folder, f"{where}.{key}") if isinstance(value, str) else value,
                          f"{where}.{key}")
        if name == naming.INPUT and program.input("input").kind == "one_hot" and array.ndim == 1:
            array = _one_hot(array, program, f"{where}.{key}")
        data[name] = _data_matrix(array, functions, name, program.layout, f"{where}.{key}")
    network = isinstance(spec.model, Network)
    bound = _check_data(data, functions, program.layout, {naming.INPUT: f"{where}.x", naming.TARGET: f"{where}.y"},
                        network)

    value = table.get("lr") if lr is None else lr
    if value is None:
        raise TrainingError(f"{where} needs the key 'lr' (the learning rate, a positive number)")
    named = f"{where}.lr" if lr is None else "--lr"  # the place the user typed it
    lr = _number(value, named)
    if not 0 < lr < float("inf"):
        raise TrainingError(f"{named}: the learning rate must be a positive number, given {value!r}")
    steps = table.get("steps", 100) if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TrainingError(f"{where}.steps: expected a positive whole number of steps, given {steps!r}")
    seed = table.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TrainingError(f"{at('seed')}: expected a whole number ≥ 0, given {seed!r}")

    axis = 1 if program.layout == "columns" else 0
    X, Y = data[naming.INPUT], data[naming.TARGET]
    samples = X.shape[axis]
    options = _options(table, at)
    X_val = Y_val = None
    validation = table.get("validation")
    if isinstance(validation, Mapping):
        for key in validation:
            if key not in ("x", "y"):
                raise TrainingError(f"{where}.validation: unknown key {key!r}; expected x and y")
        held = {}
        for key, name in (("x", naming.INPUT), ("y", naming.TARGET)):
            if key not in validation:
                raise TrainingError(f"{where}.validation needs the key {key!r}")
            value = validation[key]
            wkey = f"{where}.validation.{key}"
            array = _as_array(_read_file(value, key, spec.folder, wkey) if isinstance(value, str) else value, wkey)
            held[name] = _data_matrix(array, functions, name, program.layout, wkey)
        batch = functions.data_shapes[naming.INPUT][axis]  # the held-out samples are as many as they are
        _check_data(held, functions, program.layout, {naming.INPUT: f"{where}.validation.x",
                                                      naming.TARGET: f"{where}.validation.y"},
                    network, {size: value for size, value in bound.items() if size != batch})
        X_val, Y_val = held[naming.INPUT], held[naming.TARGET]
    elif validation is not None:
        fraction = _number(validation, at("validation"))
        held_out = int(round(fraction * samples))
        if not 0 < fraction < 1 or not 0 < held_out < samples:
            raise TrainingError(f"{at('validation')}: expected a fraction of the {samples} samples strictly between "
                                f"0 and 1 that holds out at least one, or a table {{ x = ..., y = ... }}; "
                                f"given {validation!r}")
        order = np.random.default_rng(seed).permutation(samples)
        held, kept = np.sort(order[:held_out]), np.sort(order[held_out:])
        X_val, Y_val = X.take(held, axis=axis), Y.take(held, axis=axis)
        X, Y = X.take(kept, axis=axis), Y.take(kept, axis=axis)
        data = {naming.INPUT: X, naming.TARGET: Y}
        samples = X.shape[axis]
    batch_size = options["batch_size"]
    if batch_size is not None:
        if batch_size > samples:
            raise TrainingError(f"{at('batch_size')}: {batch_size} is more than the {samples} training samples")
        fixed = functions.data_shapes[naming.INPUT][axis]
        if isinstance(fixed, int) and batch_size != fixed:
            raise TrainingError(f"{at('batch_size')}: the network's batch is fixed at {fixed} samples; "
                                f"mini-batches need a symbolic batch", hint='add batch = "m" to [network]')

    sizes = _sizes(table.get("sizes", {}), program, f"{where}.sizes")
    params = _initial_values(functions, table.get("init", "random"), seed, data, sizes, where, spec.folder)
    try:  # shapes of data and initial values, checked by the generated code itself; overflow is train's to report
        with np.errstate(all="ignore"):
            functions.cost(params, X, Y)
            if X_val is not None:
                try:
                    functions.cost(params, X_val, Y_val)
                except ShapeError as err:
                    raise ShapeError(f"validation: {err}") from None
    except ShapeError as err:
        raise ShapeError(f"{where}: {err}") from None
    classifier = None
    if isinstance(spec.model, Network) and "cross" in spec.model.cost.name:
        classifier = spec.model.activations[-1].name
    elif program.cost_name in _CLASSIFIERS:  # equations whose cost is a registered cross-entropy
        classifier = _CLASSIFIERS[program.cost_name]
    return TrainingSetup(functions, X, Y, params, lr, steps, X_val=X_val, Y_val=Y_val, classifier=classifier,
                         axis=axis, seed=seed, derivation=derivation, **options)


_OPTIMIZERS = ("sgd", "momentum", "adam")
#: the classifier a [model]'s registered cross-entropy cost makes (how its accuracy is counted)
_CLASSIFIERS = {"softmax_cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}


def _options(table: Mapping[str, Any], at) -> dict[str, Any]:
    """batch_size, epochs, shuffle and the optimiser with its hyper-parameters, checked."""
    options: dict[str, Any] = {}
    for key in ("batch_size", "epochs"):
        value = table.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise TrainingError(f"{at(key)}: expected a positive whole number, given {value!r}")
        options[key] = value
    shuffle = table.get("shuffle", True)
    if not isinstance(shuffle, bool):
        raise TrainingError(f"{at('shuffle')}: expected true or false, given {shuffle!r}")
    options["shuffle"] = shuffle
    optimizer = table.get("optimizer", "sgd")
    if optimizer not in _OPTIMIZERS:
        raise TrainingError(f"{at('optimizer')}: expected one of {', '.join(map(repr, _OPTIMIZERS))}, "
                            f"given {optimizer!r}")
    options["optimizer"] = optimizer
    for key, default, low, high in (("momentum", 0.9, 0, 1), ("beta1", 0.9, 0, 1), ("beta2", 0.999, 0, 1)):
        value = _number(table.get(key, default), at(key))
        if not low <= value < high:
            raise TrainingError(f"{at(key)}: expected a number in [0, 1), given {table.get(key)!r}")
        options[key] = value
    eps = _number(table.get("eps", 1e-8), f"{at('eps')}")
    if not 0 < eps < float("inf"):
        raise TrainingError(f"{at('eps')}: expected a positive number, given {table.get('eps')!r}")
    options["eps"] = eps
    return options


def _sizes(table: Any, program, where: str) -> dict[str, int]:
    """The ``[train].sizes`` table: a positive whole number for some of the network's symbolic sizes."""
    known = [s.name for s in program.size_symbols]
    if not isinstance(table, Mapping):
        raise TrainingError(f"{where}: expected a table of sizes, such as {{ {known[0] if known else 'n_1'} = 16 }}")
    for name, value in table.items():
        if name not in known:
            raise TrainingError(f"{where}: {name!r} is not a symbolic size of the network; "
                                f"known: {', '.join(known) or 'none (every size is a number)'}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainingError(f"{where}.{name}: expected a positive whole number, given {value!r}")
    return dict(table)


def _initial_values(functions: UpdateFunctions, init: Any, seed: int, data: Mapping[str, np.ndarray],
                    given_sizes: Mapping[str, int], where: str, folder: Path = Path(".")) -> dict[str, np.ndarray]:
    """The initial parameters: given values, and random ones (N(0, 1/fan-in) weights, zero biases) for "random";
    or ``init = "FILE.npz"``, the parameters ``--save`` wrote."""
    names = functions.params
    if isinstance(init, str) and init != "random":
        path = folder / init
        if path.suffix.lower() != ".npz":
            raise TrainingError(f"{where}.init: expected \"random\", a table of parameters or a .npz file "
                                f"(as --save writes), given {init!r}")
        if not path.is_file():
            raise TrainingError(f"{where}.init: no such file {str(path)!r}",
                                hint="paths in [train] are relative to the spec file's folder")
        _check_data_file(path, f"{where}.init")
        try:
            with np.load(path, allow_pickle=False) as loaded:
                init = {name: loaded[name] for name in loaded.files}
        except (OSError, ValueError, EOFError) as err:
            raise TrainingError(f"{where}.init: cannot read {str(path)!r}: {err}") from None
    if init == "random":
        init = {name: "random" for name in names}
    if not isinstance(init, Mapping):
        raise TrainingError(f"{where}.init: expected \"random\" or a table of parameters ({', '.join(names)})")
    unknown = [key for key in init if key not in names]
    if unknown:
        raise TrainingError(f"{where}.init: unknown parameter {unknown[0]!r}; known: {', '.join(names)}")
    missing = [name for name in names if name not in init]
    if missing:
        raise TrainingError(f"{where}.init: no initial value for {', '.join(missing)}; give numbers or \"random\"")
    given = {name: _matrix(_as_array(value, f"{where}.init.{name}"), functions.shapes[name], f"{where}.init.{name}")
             for name, value in init.items() if not (isinstance(value, str) and value == "random")}
    if len(given) == len(names):
        return {name: given[name] for name in names}
    sizes: dict[str, int] = dict(given_sizes)
    known = [(functions.data_shapes[name], data[name]) for name in (naming.INPUT, naming.TARGET)]
    known += [(functions.shapes[name], array) for name, array in given.items()]
    for shape, array in known:
        for size, value in zip(shape, array.shape):
            if isinstance(size, str) and sizes.setdefault(size, value) != value and size in given_sizes:
                raise TrainingError(f"{where}.sizes.{size}: {given_sizes[size]}, but the data or the initial "
                                    f"values make it {value}")
    unknown_sizes = sorted({size for shape in functions.shapes.values() for size in shape
                            if isinstance(size, str) and size not in sizes})
    if unknown_sizes:
        example = ", ".join(f"{size} = 16" for size in unknown_sizes)
        raise TrainingError(f"{where}.init: random initial values need the size {', '.join(unknown_sizes)}, which "
                            f"the data do not fix; give it a number in the spec, or give the parameters' values",
                            hint=f"add sizes = {{ {example} }} to [train]")
    drawn = functions.init_params(seed, **sizes)
    return {name: given.get(name, drawn[name]) for name in names}


def format_step(step: int, cost: float, params: Mapping[str, np.ndarray], width: int = 1, *, digits: int = 5,
                unit: str = "step", extra: Mapping[str, float] | None = None) -> str:
    """One line of a training log: the cost, any ``extra`` figures and every 1×1 parameter, to ``digits``
    significant digits.

    >>> format_step(1, 9818.83, {"W1": np.array([[-8.59478]]), "b1": np.zeros((3, 1))})
    'step 1  cost 9818.8  W1 = -8.5948'
    >>> format_step(2, 0.5, {}, unit="epoch", extra={"accuracy": 0.875})
    'epoch 2  cost 0.5  accuracy 0.875'
    """
    figures = "".join(f"  {name} {value:.{digits}g}" for name, value in (extra or {}).items())
    scalars = "".join(f"  {name} = {float(a.reshape(-1)[0]):.{digits}g}" for name, a in params.items() if a.size == 1)
    return f"{unit} {step:>{width}}  cost {float(cost):.{digits}g}{figures}{scalars}"


def accuracy(setup: TrainingSetup, params: Mapping[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> float:
    """The share of samples whose predicted class is the target's: the largest output (softmax), or the
    output rounded at 0.5 (one sigmoid output; several sigmoid outputs count each entry)."""
    with np.errstate(all="ignore"):
        output = setup.functions.forward(params, X)
    class_axis = 1 - setup.axis
    if setup.classifier == "softmax" or (output.shape[class_axis] > 1 and setup.classifier != "sigmoid"):
        return float(np.mean(np.argmax(output, axis=class_axis) == np.argmax(Y, axis=class_axis)))
    return float(np.mean((output > 0.5) == (Y > 0.5)))


class _Optimizer:
    """One update on a batch: the generated ``step_inplace`` (sgd), or momentum or Adam on the generated
    ``gradients``, as PyTorch's SGD(momentum=μ) and Adam define them:

    * momentum: v ← μ v + g;  θ ← θ − η v
    * adam: m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²;  θ ← θ − η m̂ / (√v̂ + ε),
      with m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ)

    Every new value is computed before any parameter is changed, so Ctrl-C leaves a whole step or none.
    """

    def __init__(self, setup: TrainingSetup, params: Mapping[str, np.ndarray]):
        self.setup = setup
        self.t = 0
        self.m = {name: np.zeros_like(value) for name, value in params.items()}
        self.v = {name: np.zeros_like(value) for name, value in params.items()}
        program = setup.derivation.program if setup.derivation is not None else None
        #: dropout masks, drawn afresh for every step from their own seeded generator
        self.masks = [i for i in program.inputs if i.kind == "mask"] if program is not None else []
        self.mask_rng = np.random.default_rng([setup.seed, 1])
        sizes: dict[str, int] = {}
        if program is not None:
            for parameter in program.parameters:
                if parameter.name in params:
                    for size, given in zip(parameter.shape, np.shape(params[parameter.name])):
                        if size.is_Symbol:
                            sizes.setdefault(size.name, int(given))
        self.sizes = sizes

    def _masks(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """A fresh 0/1 mask per dropout layer for this batch: each entry kept with probability 1 − p."""
        masks = {}
        batch = X.shape[self.setup.axis]  # training data are matrices (word ids are read as one-hot samples)
        dtype = next(iter(self.setup.params.values())).dtype
        for mask in self.masks:
            shape = []
            for axis, size in enumerate(mask.shape):
                if axis == self.setup.axis:
                    shape.append(batch)
                else:
                    shape.append(int(size) if size.is_Integer else self.sizes[size.name])
            masks[mask.name] = (self.mask_rng.random(tuple(shape)) >= mask.rate).astype(dtype)
        return masks

    def __call__(self, params: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray) -> None:
        s, f = self.setup, self.setup.functions
        masks = self._masks(X) if self.masks else {}
        if s.optimizer == "sgd":
            f.step_inplace(params, X, Y, s.lr, **masks)
            return
        grads = f.gradients(params, X, Y, **masks)
        self.t += 1
        if s.optimizer == "momentum":
            v = {name: s.momentum * self.v[name] + grads[name] for name in params}
            new = {name: params[name] - s.lr * v[name] for name in params}
            self.v = v
        else:
            m = {name: s.beta1 * self.m[name] + (1 - s.beta1) * grads[name] for name in params}
            v = {name: s.beta2 * self.v[name] + (1 - s.beta2) * grads[name] ** 2 for name in params}
            c1, c2 = 1 - s.beta1 ** self.t, 1 - s.beta2 ** self.t
            new = {name: params[name] - s.lr * (m[name] / c1) / (np.sqrt(v[name] / c2) + s.eps) for name in params}
            self.m, self.v = m, v
        for name, value in new.items():
            params[name][...] = value


def _batches(setup: TrainingSetup, rng: np.random.Generator):
    """Index arrays of the mini-batches, epoch after epoch (each epoch's order reshuffled when ``shuffle``)."""
    samples = setup.X.shape[setup.axis]
    size = setup.batch_size or samples
    while True:
        order = rng.permutation(samples) if setup.shuffle and size < samples else np.arange(samples)
        yield [order[start:start + size] for start in range(0, samples, size)]


def train(setup: TrainingSetup, out: TextIO | None = None, *, every: int = 1, digits: int = 5,
          quiet: bool = False, progress: Any = None) -> History:
    """Run ``setup.steps`` steps (or ``setup.epochs`` epochs) of the optimiser; write a line every ``every``
    steps (and the last) to ``out`` if given, only the last if ``quiet``.

    Ctrl-C (KeyboardInterrupt) stops the run between two whole steps: the history keeps what was reached,
    and ``History.interrupted`` says how many steps (or epochs) were done.
    """
    f, X, Y, axis = setup.functions, setup.X, setup.Y, setup.axis
    params = {name: np.array(value, dtype=np.float64) for name, value in setup.params.items()}
    unit = "epoch" if setup.epochs is not None else "step"
    total = setup.epochs if setup.epochs is not None else setup.steps
    history = History(unit=unit)
    width = len(str(total))
    update = _Optimizer(setup, params)
    epochs = _batches(setup, np.random.default_rng(setup.seed))
    pending: list[np.ndarray] = []
    full = setup.batch_size is None or setup.batch_size >= X.shape[axis]
    line = ""
    step = 0
    try:
        for step in range(total + 1):
            with np.errstate(all="ignore"):  # divergence is reported below, once
                if step and unit == "epoch":
                    for index in next(epochs):
                        update(params, X.take(index, axis=axis), Y.take(index, axis=axis))
                elif step:
                    if full:
                        update(params, X, Y)
                    else:
                        if not pending:
                            pending = list(next(epochs))
                        index = pending.pop(0)
                        update(params, X.take(index, axis=axis), Y.take(index, axis=axis))
                cost = f.cost(params, X, Y)
            if not np.isfinite(cost) and step == 0:  # before any step: the numbers, not the learning rate
                largest = max(float(np.max(np.abs(array))) for array in (X, Y, *params.values()))
                why = ("the data or the initial values are too large for float64 arithmetic" if np.isinf(cost) else
                       "an activation or the cost is undefined at these values, or overflows")
                raise TrainingError(f"the cost is {float(cost)} at the start, before any step: {why} (the largest "
                                    f"value is {largest:.5g})", hint="scale the data, e.g. to [-1, 1]")
            if not np.isfinite(cost):
                raise TrainingError(f"the cost is {float(cost)} after {step} {unit}s: the learning rate "
                                    f"{setup.lr:g} is too large for this problem", hint=f"try --lr {setup.lr / 10:g}")
            history.record(cost, params)
            extra = _figures(setup, params, history)
            line = format_step(step, cost, params, width, digits=digits, unit=unit, extra=extra)
            if out is not None and not quiet and (step % every == 0 or step == total):
                out.write(line + "\n")
            if progress is not None:
                progress(step, total, line)
    except KeyboardInterrupt:
        if not history.costs:
            raise
        # the parameters of the last step recorded: a step under way when Ctrl-C came is not kept half-counted
        history.interrupted = len(history.costs) - 1
        if out is not None and not quiet and step % every and line:
            out.write(line + "\n")  # the last step reached, when --every skipped it
    if out is not None and quiet and line:
        out.write(line + "\n")
    return history


def _figures(setup: TrainingSetup, params: Mapping[str, np.ndarray], history: History) -> dict[str, float]:
    """The validation cost and the accuracies, recorded in ``history`` and returned for the log line."""
    figures = {}
    if setup.X_val is not None:
        with np.errstate(all="ignore"):
            history.val_costs.append(float(setup.functions.cost(params, setup.X_val, setup.Y_val)))
        figures["val_cost"] = history.val_costs[-1]
    if setup.classifier is not None:
        history.accuracies.append(accuracy(setup, params, setup.X, setup.Y))
        figures["accuracy"] = history.accuracies[-1]
        if setup.X_val is not None:
            history.val_accuracies.append(accuracy(setup, params, setup.X_val, setup.Y_val))
            figures["val_accuracy"] = history.val_accuracies[-1]
    return figures


def _pyplot_free_figure():
    """A matplotlib Figure drawn by the Agg canvas, without touching pyplot's global state."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise TrainingError("--plot needs matplotlib; install it with: pip install 'symbackprop[plot]'") from None
    figure = Figure(figsize=(8, 6), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_history(history: History, path: str | Path, title: str = "") -> None:
    """Draw the cost (training and validation) and the accuracy when computed, or else the parameters
    (values when 1×1, norms otherwise), over the steps or epochs to ``path``."""
    figure = _pyplot_free_figure()
    cost_axes, value_axes = figure.subplots(2, 1, sharex=True)
    steps = range(len(history.costs))
    cost_axes.plot(steps, history.costs, marker=".", label="training")
    if history.val_costs:
        cost_axes.plot(steps, history.val_costs, marker=".", label="validation")
        cost_axes.legend()
    if min(history.costs + history.val_costs) > 0:
        cost_axes.set_yscale("log")
    cost_axes.set_ylabel("cost C")
    cost_axes.grid(True)
    if title:
        cost_axes.set_title(title)
    if history.accuracies:
        value_axes.plot(steps, history.accuracies, marker=".", label="training")
        if history.val_accuracies:
            value_axes.plot(steps, history.val_accuracies, marker=".", label="validation")
        value_axes.set_ylabel("accuracy")
    else:
        for name, values in history.values.items():
            value_axes.plot(steps, values, marker=".", label=name if history.scalar[name] else f"‖{name}‖")
        value_axes.set_ylabel("parameters")
    value_axes.set_xlabel(history.unit)
    value_axes.xaxis.get_major_locator().set_params(integer=True)
    value_axes.grid(True)
    value_axes.legend()
    image = io.BytesIO()
    figure.savefig(image, format=_plot_format(path))  # drawn whole first, then written whole or not at all
    try:
        write_outputs([(image.getvalue(), path)])
    except OutputError as err:
        raise OutputError(f"--plot: {err}") from None


_PLOT_FORMATS = ("png", "pdf", "svg")


def _plot_format(path: str | Path) -> str:
    """The image format ``path``'s suffix names; a path with another suffix or none is refused."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in _PLOT_FORMATS and Path(path).exists() and not Path(path).is_file():
        return "png"  # a device or a pipe: its name says nothing
    if suffix not in _PLOT_FORMATS:
        raise OutputError(f"--plot: cannot write {str(path)!r}: the name must end in "
                          f"{', '.join('.' + f for f in _PLOT_FORMATS[:-1])} or .{_PLOT_FORMATS[-1]}",
                          hint=f"--plot {Path(path).name or 'plot'}.png" if not suffix else None)
    return suffix


def quantity_values(setup: TrainingSetup, name: str, params: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The values of a named quantity (``"a1"``, ``"z2"``, ``"delta1"``, ``"W2"``) on the training data,
    at ``params`` (the initial values when not given)."""
    values = _values(setup, setup.params if params is None else params)
    with np.errstate(all="ignore"):
        return np.asarray(setup.derivation.evaluate(name, values), dtype=np.float64)


def _values(setup: TrainingSetup, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The data, ``params``, the fixed parameters' values (b1 = 0.35 of the 2-2-2 example) and the dropout
    masks of evaluation mode (1 − p: the layer passes its input on), by name."""
    values = {naming.INPUT: setup.X, naming.TARGET: setup.Y, **params}
    derivation = setup.derivation
    sizes = {str(size): length for name, array in values.items() if name in derivation.symbols
             for size, length in zip(derivation.symbols[name].shape, np.shape(array)) if not size.is_Integer}
    for parameter in derivation.program.fixed:
        shape = tuple(int(size) if size.is_Integer else sizes[str(size)] for size in parameter.shape)
        values[parameter.name] = parameter.fixed_array(shape)
    for mask in (i for i in derivation.program.inputs if i.kind == "mask"):  # evaluation mode: nothing dropped
        shape = tuple(int(size) if size.is_Integer else sizes[str(size)] for size in mask.shape)
        values[mask.name] = np.full(shape, 1 - float(mask.rate))
    return values


def derivation_values(spec: Spec, *, seed: int = 0) -> tuple[str, dict[str, np.ndarray]]:
    """Every quantity of ``spec``'s derivation evaluated (``symbackprop derive --values``): the inputs, targets
    and parameters, each forward definition, the cost, each named adjoint (δ, ∂C/∂a) and each gradient
    (``dC/dW1``), at the ``[train]`` table's data and initial values, or without one at random values drawn
    from ``seed`` (symbolic sizes 2).  Returns what they were evaluated at, in words, and the values by name.
    """
    from .calculus.expressions import Named

    if spec.train is not None:
        setup = training_setup(spec)
        derivation, at = setup.derivation, "the [train] data and initial values"
        values: dict[str, Any] = _values(setup, setup.params)
    else:
        from .checking.gradients import random_values

        derivation = derive(program_of(spec.model))
        program = derivation.program
        sizes = {symbol.name: 2 for symbol in program.size_symbols}
        values = random_values(program, sizes=sizes, seed=seed)
        chosen = f"; sizes {', '.join(f'{k} = {v}' for k, v in sizes.items())}" if sizes else ""
        at = f"random inputs, targets and parameters (seed {seed}{chosen}; add a [train] table for your own)"
    program = derivation.program
    shown: dict[str, np.ndarray] = {}
    quantities: list[tuple[str, Any]] = [(name, derivation.symbols[name]) for name in derivation.symbols]
    quantities += [(d.name, d.node) for d in program.forward]
    adjoints = [node for node in derivation.adjoints.values() if isinstance(node, Named)]
    quantities += [("C", derivation.cost)] + [(node.name, node) for node in dict.fromkeys(adjoints)]
    quantities += [(f"dC/d{name}", gradient) for name, gradient in derivation.gradients.items()]
    with np.errstate(all="ignore"):
        for name, expr in quantities:
            shown[name] = np.asarray(derivation.evaluate(expr, values), dtype=np.float64)
    return at, shown


def format_array(name: str, value: np.ndarray, digits: int = 5, where: str = "") -> str:
    """``name`` and its values, one row a line, whatever the shape.

    >>> print(format_array("W2", np.array([[1.0, -0.5], [2.0, 1e-7]]), 3, "at step 3"), end="")
    W2 at step 3 (2×2) =
          1   -0.5
          2  1e-07
    """
    array = np.atleast_2d(value)
    cells = [[f"{float(x):.{digits}g}" for x in row] for row in array]
    width = max(len(cell) for row in cells for cell in row)
    rows, cols = array.shape
    lines = "".join("  " + "  ".join(cell.rjust(width) for cell in row) + "\n" for row in cells)
    return f"{name}{' ' + where if where else ''} ({rows}×{cols}) =\n{lines}"


def _check_show(setup: TrainingSetup, names: list[str]) -> None:
    for name in names:
        if name in setup.params:
            continue
        try:
            quantity_values(setup, name)
        except SymbackpropError as err:
            raise TrainingError(f"--show: {err}") from None


def save_params(params: Mapping[str, np.ndarray], path: str | Path) -> None:
    """Write ``params`` to ``path`` as a .npz (numpy.savez), whole or not at all; ``init = "FILE.npz"`` reads it."""
    data = io.BytesIO()
    np.savez(data, **{name: np.asarray(value) for name, value in params.items()})
    try:
        write_outputs([(data.getvalue(), path)])
    except OutputError as err:
        raise OutputError(f"--save: {err}") from None


def _check_save(path: str | Path) -> None:
    if Path(path).suffix.lower() != ".npz":
        raise OutputError(f"--save: cannot write {str(path)!r}: the name must end in .npz",
                          hint=f"--save {Path(path).stem or 'params'}.npz")
    try:
        check_path(path)
    except OutputError as err:
        raise OutputError(f"--save: {err}", hint=err.hint) from None


def train_spec(path: str | Path, *, plot: str | Path | None = None, steps: int | None = None,
               lr: float | None = None, out: TextIO | None = None, save: str | Path | None = None,
               overrides: Mapping[str, Any] | None = None, every: int = 1, digits: int = 5, quiet: bool = False,
               progress: Any = None, setup_out: list | None = None, show: list[str] | tuple = ()) -> History:
    """Train the network of the spec file at ``path`` as its ``[train]`` table says (``symbackprop train``).

    ``overrides`` replaces keys of the table (``batch_size``, ``optimizer``, …); ``save`` writes the
    parameters reached to a .npz, also when Ctrl-C stops the run (``History.interrupted``).
    """
    spec = read_spec(path)
    if plot is not None:  # a missing matplotlib, or a path that cannot be written, is reported before training
        try:
            check_path(plot)
        except OutputError as err:
            raise OutputError(f"--plot: {err}", hint=err.hint) from None
        _plot_format(plot)
        _pyplot_free_figure()
    if save is not None:
        _check_save(save)
    setup = training_setup(spec, steps=steps, lr=lr, overrides=overrides)
    if setup_out is not None:
        setup_out.append(setup)
    show = list(show)
    _check_show(setup, show)
    unit = "epoch" if setup.epochs is not None else "step"
    starts = {name: quantity_values(setup, name) for name in show if name not in setup.params}
    if out is not None:
        for name, value in starts.items():
            out.write(format_array(name, value, digits, f"at {unit} 0"))
    history = train(setup, out, every=every, digits=digits, quiet=quiet, progress=progress)
    last = len(history.costs) - 1
    for name in show:
        value = history.params[name] if name in setup.params else quantity_values(setup, name, history.params)
        history.shown[name] = (starts.get(name), value)
        if out is not None:
            out.write(format_array(name, value, digits, f"at {unit} {last}"))
    if save is not None:
        save_params(history.params, save)
    if plot is not None:
        plot_history(history, plot, title=Path(path).name)
    return history

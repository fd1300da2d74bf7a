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

Data are taken in the network's layout (columns: X is features × samples).
A 1-d list is one sample, unless the network has one input (or one output),
when it is one value per sample.  Training runs ``step_inplace`` of the
generated NumPy code and records the cost and the parameters after every step.

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
from .errors import OutputError, ShapeError, TrainingError
from .model.network import Network
from .outputs.files import check_path, write_outputs
from .spec import Spec, read_spec

__all__ = ["TrainingSetup", "History", "training_setup", "train", "train_spec", "format_step", "plot_history"]

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

    def record(self, cost: float, params: Mapping[str, np.ndarray]) -> None:
        self.costs.append(float(cost))
        self.params = {name: array.copy() for name, array in params.items()}
        for name, array in params.items():
            self.scalar[name] = array.size == 1
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


def _data_shape(functions: UpdateFunctions, name: str, layout: str, one_sample: bool) -> tuple:
    """X's or Y's shape, with the batch side 1 when a 1-d list is one sample of several features."""
    rows, cols = functions.data_shapes[name]
    width = rows if layout == "columns" else cols
    if width == 1 or not one_sample:
        return (rows, cols)
    return (rows, 1) if layout == "columns" else (1, cols)


def training_setup(spec: Spec, *, steps: int | None = None, lr: float | None = None) -> TrainingSetup:
    """Read and check ``spec``'s ``[train]`` table; ``steps`` and ``lr`` override it."""
    where = f"{spec.source}: [train]"
    table = spec.train
    if table is None:
        raise TrainingError(f"{spec.source}: no [train] table; add one with x, y, lr and steps")
    program = program_of(spec.model)
    if program.scalars:
        what = "weight_decay is the symbol" if isinstance(spec.model, Network) else "the model uses the scalar"
        raise TrainingError(f"{spec.source}: {what} {program.scalars[0]}; training needs a number")
    for key in ("x", "y"):
        if key not in table:
            raise TrainingError(f"{where} needs the key {key!r} (numbers, nested lists or a .npz/.npy/.csv file)")
    functions = derive(program).numpy()

    data = {}
    for key, name in (("x", naming.INPUT), ("y", naming.TARGET)):
        value = table[key]
        array = _as_array(_read_file(value, key, spec.folder, f"{where}.{key}") if isinstance(value, str) else value,
                          f"{where}.{key}")
        shape = _data_shape(functions, name, program.layout, one_sample=array.ndim == 1)
        data[name] = _matrix(array, shape, f"{where}.{key}")

    value = table.get("lr") if lr is None else lr
    if value is None:
        raise TrainingError(f"{where} needs the key 'lr' (the learning rate, a positive number)")
    lr = _number(value, f"{where}.lr")
    if not 0 < lr < float("inf"):
        raise TrainingError(f"{where}.lr: the learning rate must be a positive number, given {value!r}")
    steps = table.get("steps", 100) if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TrainingError(f"{where}.steps: expected a positive whole number of steps, given {steps!r}")
    seed = table.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TrainingError(f"{where}.seed: expected a whole number ≥ 0, given {seed!r}")

    sizes = _sizes(table.get("sizes", {}), program, f"{where}.sizes")
    params = _initial_values(functions, table.get("init", "random"), seed, data, sizes, where)
    try:  # shapes of data and initial values, checked by the generated code itself; overflow is train's to report
        with np.errstate(all="ignore"):
            functions.cost(params, data[naming.INPUT], data[naming.TARGET])
    except ShapeError as err:
        raise ShapeError(f"{where}: {err}") from None
    return TrainingSetup(functions, data[naming.INPUT], data[naming.TARGET], params, lr, steps)


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
                    given_sizes: Mapping[str, int], where: str) -> dict[str, np.ndarray]:
    """The initial parameters: given values, and random ones (N(0, 1/fan-in) weights, zero biases) for "random"."""
    names = functions.params
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
             for name, value in init.items() if value != "random"}
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


def format_step(step: int, cost: float, params: Mapping[str, np.ndarray], width: int = 1) -> str:
    """One line of a training log: the cost and every 1×1 parameter, to 5 significant digits.

    >>> format_step(1, 9818.83, {"W1": np.array([[-8.59478]]), "b1": np.zeros((3, 1))})
    'step 1  cost 9818.8  W1 = -8.5948'
    """
    scalars = "".join(f"  {name} = {float(a.reshape(-1)[0]):.5g}" for name, a in params.items() if a.size == 1)
    return f"step {step:>{width}}  cost {float(cost):.5g}{scalars}"


def train(setup: TrainingSetup, out: TextIO | None = None) -> History:
    """Run ``setup.steps`` steps of gradient descent; write a line per step to ``out`` if given."""
    f, X, Y = setup.functions, setup.X, setup.Y
    params = {name: np.array(value, dtype=np.float64) for name, value in setup.params.items()}
    history = History()
    width = len(str(setup.steps))
    for step in range(setup.steps + 1):
        with np.errstate(all="ignore"):  # divergence is reported below, once
            if step:
                f.step_inplace(params, X, Y, setup.lr)
            cost = f.cost(params, X, Y)
        if not np.isfinite(cost) and step == 0:  # before any step: the numbers, not the learning rate
            largest = max(float(np.max(np.abs(array))) for array in (X, Y, *params.values()))
            why = ("the data or the initial values are too large for float64 arithmetic" if np.isinf(cost) else
                   "an activation or the cost is undefined at these values, or overflows")
            raise TrainingError(f"the cost is {float(cost)} at the start, before any step: {why} (the largest "
                                f"value is {largest:.5g})", hint="scale the data, e.g. to [-1, 1]")
        if not np.isfinite(cost):
            raise TrainingError(f"the cost is {float(cost)} after {step} steps: the learning rate "
                                f"{setup.lr:g} is too large for this problem", hint=f"try --lr {setup.lr / 10:g}")
        history.record(cost, params)
        if out is not None:
            out.write(format_step(step, cost, params, width) + "\n")
    return history


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
    """Draw the cost and the parameters (values when 1×1, norms otherwise) over the steps to ``path``."""
    figure = _pyplot_free_figure()
    cost_axes, value_axes = figure.subplots(2, 1, sharex=True)
    steps = range(len(history.costs))
    cost_axes.plot(steps, history.costs, marker=".")
    if min(history.costs) > 0:
        cost_axes.set_yscale("log")
    cost_axes.set_ylabel("cost C")
    cost_axes.grid(True)
    if title:
        cost_axes.set_title(title)
    for name, values in history.values.items():
        value_axes.plot(steps, values, marker=".", label=name if history.scalar[name] else f"‖{name}‖")
    value_axes.set_xlabel("step")
    value_axes.xaxis.get_major_locator().set_params(integer=True)
    value_axes.set_ylabel("parameters")
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


def train_spec(path: str | Path, *, plot: str | Path | None = None, steps: int | None = None,
               lr: float | None = None, out: TextIO | None = None) -> History:
    """Train the network of the spec file at ``path`` as its ``[train]`` table says (``symbackprop train``)."""
    spec = read_spec(path)
    if plot is not None:  # a missing matplotlib, or a path that cannot be written, is reported before training
        try:
            check_path(plot)
        except OutputError as err:
            raise OutputError(f"--plot: {err}", hint=err.hint) from None
        _plot_format(plot)
        _pyplot_free_figure()
    setup = training_setup(spec, steps=steps, lr=lr)
    history = train(setup, out)
    if plot is not None:
        plot_history(history, plot, title=Path(path).name)
    return history

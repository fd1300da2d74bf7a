"""Reading a network from a TOML spec file.

.. code-block:: toml

    [network]
    inputs = 3              # an integer or a symbol name like "n_0"
    cost = "squared_error"
    layout = "columns"      # optional, default "columns"
    batch = 1               # optional, an integer or a symbol name like "m"
    weight_decay = 0.0      # optional

    fixed = { b1 = 0.35 }   # optional: parameters held at a value, not trained

    [[layers]]
    units = 4
    activation = "sigmoid"  # a name, or a formula in x such as "x**3"
    bias = true             # optional: true, false or "shared" (one scalar for every unit)
    skip_from = 0           # optional: add the output of an earlier layer (0: the input)
    tied_to = 1             # optional: use W1ᵀ instead of a weight of its own

Instead of ``[network]`` and ``[[layers]]``, a ``[model]`` table writes the
forward pass as equations:

.. code-block:: toml

    [model]
    inputs = { X = ["n_0", "m"], Y = ["n_0", "m"] }
    parameters = { W1 = ["n_1", "n_0"], b1 = ["n_1", 1], W2 = ["n_0", "n_1"] }
    forward = ["z1 = W1 @ X + b1", "a1 = tanh(z1)", "a2 = W2 @ a1 + X", "C = sum((a2 - Y)^2)"]
    layout = "columns"      # optional
    fixed = { }             # optional
    scalars = ["lam"]       # optional: scalar symbols the cost uses

An optional ``[train]`` table (data, initial values, learning rate, steps) is
read and kept for training.  Every error names the file and the key at fault.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import SpecError, did_you_mean
from .model.equations import Model
from .model.layers import KINDS as LAYER_KINDS
from .model.network import Dense, Network

__all__ = ["Spec", "load_spec", "read_spec", "parse_spec"]

_NETWORK_KEYS = {"inputs": True, "cost": False, "layout": False, "batch": False, "weight_decay": False,
                 "fixed": False, "reduction": False}
_LAYER_KEYS = {"units": True, "activation": False, "bias": False, "skip_from": False, "tied_to": False}
#: the keys of each layer kind's table besides ``kind`` (True: required)
_KIND_KEYS = {
    "dense": _LAYER_KEYS,
    "layernorm": {"eps": False, "skip_from": False},
    "batchnorm": {"eps": False, "skip_from": False},
    "attention": {"d_k": True, "causal": False, "skip_from": False},
    "embedding": {"vocab": True, "dim": True},
    "dropout": {"p": True},
}
_MODEL_KEYS = {"inputs": True, "parameters": True, "forward": True, "layout": False, "fixed": False, "scalars": False}
_TRAIN_KEYS = ("x", "y", "init", "lr", "steps", "seed", "sizes", "batch_size", "epochs", "shuffle", "optimizer",
               "momentum", "beta1", "beta2", "eps", "validation")
_TOP_KEYS = ("network", "layers", "model", "train")
#: the largest spec file read (1 MiB): a real spec is a few hundred bytes; the examples' largest is under 1 KiB
MAX_SPEC_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Spec:
    """A spec file's contents: the model (a :class:`Network` or a :class:`Model`) and the raw ``[train]`` table."""

    model: "Network | Model"
    train: Mapping[str, Any] | None = None
    source: str = "<spec>"
    folder: Path = field(default_factory=Path)


def _unknown(keys, known, where: str, source: str) -> None:
    for key in keys:
        if key not in known:
            raise SpecError(f"{source}: unknown key {where}{key!r}; known keys: {', '.join(known)}",
                            hint=did_you_mean(key, known))


def parse_spec(data: Mapping[str, Any], source: str = "<spec>", folder: Path | None = None) -> Spec:
    """Build a :class:`Spec` from an already-parsed TOML document."""
    _unknown(data, _TOP_KEYS, "", source)
    if "model" in data:
        for key in ("network", "layers"):
            if key in data:
                raise SpecError(f"{source}: a spec has either [model] (equations) or [network] and [[layers]], "
                                f"not both; remove [{key}]")
        net: Network | Model = _model(data["model"], source)
    else:
        net = _network(data, source)
    train = data.get("train")
    if train is not None:
        if not isinstance(train, Mapping):
            raise SpecError(f"{source}: [train] must be a table")
        _unknown(train, _TRAIN_KEYS, "[train].", source)
    return Spec(net, train, source, folder or Path("."))


def _network(data: Mapping[str, Any], source: str) -> Network:
    network = data.get("network")
    if not isinstance(network, Mapping):
        raise SpecError(f"{source}: missing [network] table (with at least inputs = ...), or a [model] table")
    _unknown(network, list(_NETWORK_KEYS), "[network].", source)
    for key, required in _NETWORK_KEYS.items():
        if required and key not in network:
            raise SpecError(f"{source}: [network] needs the key {key!r}")
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SpecError(f"{source}: no [[layers]]; add at least one [[layers]] table with units = ...")
    built = []
    for index, layer in enumerate(layers, 1):
        where = f"[[layers]] #{index}"
        if not isinstance(layer, Mapping):
            raise SpecError(f"{source}: {where} must be a table")
        layer = dict(layer)
        kind = layer.pop("kind", "dense")
        if kind not in _KIND_KEYS:
            raise SpecError(f"{source}: {where}: unknown layer kind {kind!r}; known: {', '.join(_KIND_KEYS)}",
                            hint=did_you_mean(kind, list(_KIND_KEYS)))
        keys = _KIND_KEYS[kind]
        _unknown(layer, list(keys), f"in {where} (kind {kind}): " if kind != "dense" else f"in {where}: ", source)
        for key, required in keys.items():
            if required and key not in layer:
                raise SpecError(f"{source}: {where} needs the key {key!r}")
        try:
            built.append(Dense(**layer) if kind == "dense" else LAYER_KINDS[kind](**layer))
        except SpecError as err:
            raise SpecError(f"{source}: {where}: {err}", hint=err.hint) from None
    try:
        return Network(layers=built, **network)
    except SpecError as err:
        raise SpecError(f"{source}: [network]: {err}", hint=err.hint) from None


def _model(table: object, source: str) -> Model:
    if not isinstance(table, Mapping):
        raise SpecError(f"{source}: [model] must be a table with inputs, parameters and forward")
    _unknown(table, list(_MODEL_KEYS), "[model].", source)
    for key, required in _MODEL_KEYS.items():
        if required and key not in table:
            raise SpecError(f"{source}: [model] needs the key {key!r}")
    try:
        return Model(**table)
    except SpecError as err:
        raise SpecError(f"{source}: [model]: {err}", hint=err.hint) from None


def read_spec(path: str | Path) -> Spec:
    """Read a spec file: the network and its ``[train]`` table."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:  # at most one byte more than a spec may have: /dev/zero is not read whole
            data = handle.read(MAX_SPEC_BYTES + 1)
        if len(data) > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: not a spec file: it is larger than {MAX_SPEC_BYTES // 2**20} MiB "
                            f"(a spec file is a few hundred bytes)")
        text = data.decode("utf-8-sig")  # a byte-order mark is not TOML
    except FileNotFoundError:
        hint = None if path.is_absolute() else "paths are relative to the current folder"
        raise SpecError(f"{path}: no such spec file", hint=hint) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: cannot read the spec file ({err.__class__.__name__}: {err})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML: {err}",
                        hint='names are strings in quotes (activation = "tanh"); docs/spec.md shows the format') from None
    except RecursionError:
        raise SpecError(f"{path}: not a spec file: its values are nested too deeply") from None
    _check_integers(data, str(path), "")
    return parse_spec(data, str(path), path.parent)


_INT64 = 2**63


def _check_integers(value: Any, source: str, where: str) -> None:
    """Refuse an integer beyond 64 bits, as TOML 1.0 says a reader must (Python's tomllib takes any size)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_integers(item, source, f"{where}.{key}" if where else f"[{key}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_integers(item, source, f"[[layers]] #{index + 1}" if where == "[layers]" else f"{where}[{index}]")
    elif isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        raise SpecError(f"{source}: {where}: the integer {value} is out of range: a TOML integer has 64 bits "
                        f"(at most {_INT64 - 1})")


def load_spec(path: str | Path) -> "Network | Model":
    """The network (or the model written as equations) described by a TOML spec file.

    >>> import tempfile, pathlib
    >>> spec = pathlib.Path(tempfile.mkdtemp()) / "net.toml"
    >>> _ = spec.write_text('[network]\\ninputs = "n_0"\\n[[layers]]\\nunits = 2\\nactivation = "tanh"\\n')
    >>> load_spec(spec).layers[0].activation.name
    'tanh'
    """
    return read_spec(path).model

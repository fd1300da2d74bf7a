"""What the scaling examples share: examples/softmax_classifier.toml's network, data and widths.

distributed_torch.py and sharded_jax.py import it (it sits beside them); the
training settings are theirs: seed 0 and learning rate 0.05, as in the spec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPEC = HERE / "softmax_classifier.toml"
SEED, LR = 0, 0.05


def data(dtype=np.float64):
    """The spec's 24 samples, as rows: X (24 × 4) and one-hot Y (24 × 3)."""
    return tuple(np.loadtxt(HERE / "data" / name, delimiter=",", ndmin=2).astype(dtype)
                 for name in ("classes_x.csv", "classes_y.csv"))


def sizes() -> dict[str, int]:
    """The widths: n_0 and k from the data, the hidden ones as the spec's [train] table gives them."""
    from symbackprop.spec import read_spec

    X, Y = data()
    return {"n_0": X.shape[1], **read_spec(SPEC).train["sizes"], "k": Y.shape[1]}


def derivation():
    """The spec's network derived (it takes milliseconds): ``.code("torch")``, ``.compiled("jax")``, …"""
    from symbackprop import derive, load_spec

    return derive(load_spec(SPEC))

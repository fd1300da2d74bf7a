"""The digits example (examples/digits.toml) trained twice: by ``symbackprop train`` and by PyTorch.

Both start from the same initial values (the spec's seeded "random" ones), train on the same
validation split and the same reshuffled mini-batches, with Adam at the same hyper-parameters and
the cross-entropy summed over each batch, in float64; the script prints each run's final cost and
accuracies, and exits 1 if the accuracies differ.  Run from the repository's root:

    python benchmarks/digits_torch.py

PyTorch is needed only here (``pip install torch``), never by symbackprop.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from symbackprop.spec import read_spec  # noqa: E402
from symbackprop.training import train, training_setup  # noqa: E402

SPEC = ROOT / "examples" / "digits.toml"


def symbackprop_run() -> dict[str, float]:
    setup = training_setup(read_spec(SPEC))
    start = time.perf_counter()
    history = train(setup, io.StringIO())
    return {"cost": history.costs[-1], "val_cost": history.val_costs[-1], "accuracy": history.accuracies[-1],
            "val_accuracy": history.val_accuracies[-1], "seconds": time.perf_counter() - start}


def torch_run() -> dict[str, float]:
    import torch

    torch.set_num_threads(1)  # these matrices are small: threads cost more than they give
    setup = training_setup(read_spec(SPEC))
    X, Y = torch.tensor(setup.X), torch.tensor(setup.Y)
    Xv, Yv = torch.tensor(setup.X_val), torch.tensor(setup.Y_val)
    params = {name: torch.tensor(value, requires_grad=True) for name, value in setup.params.items()}
    optimizer = torch.optim.Adam(params.values(), lr=setup.lr, betas=(setup.beta1, setup.beta2), eps=setup.eps)

    def logits(X):
        hidden = torch.relu(X @ params["W1"] + params["b1"])
        return hidden @ params["W2"] + params["b2"]

    def cost(X, Y):
        return -(Y * torch.log_softmax(logits(X), dim=1)).sum()

    def accuracy(X, Y):
        return float((logits(X).argmax(dim=1) == Y.argmax(dim=1)).double().mean())

    rng = np.random.default_rng(setup.seed)  # the batches symbackprop draws: a permutation per epoch
    samples = X.shape[0]
    start = time.perf_counter()
    for _ in range(setup.epochs):
        order = rng.permutation(samples) if setup.shuffle else np.arange(samples)
        for first in range(0, samples, setup.batch_size):
            index = torch.tensor(order[first:first + setup.batch_size])
            optimizer.zero_grad()
            cost(X[index], Y[index]).backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        return {"cost": float(cost(X, Y)), "val_cost": float(cost(Xv, Yv)), "accuracy": accuracy(X, Y),
                "val_accuracy": accuracy(Xv, Yv), "seconds": seconds}


def main() -> int:
    ours, theirs = symbackprop_run(), torch_run()
    print(f"{'':12} {'cost':>10} {'val_cost':>10} {'accuracy':>9} {'val_acc':>8} {'seconds':>8}")
    for name, run in (("symbackprop", ours), ("pytorch", theirs)):
        print(f"{name:12} {run['cost']:10.5g} {run['val_cost']:10.5g} {run['accuracy']:9.4f} "
              f"{run['val_accuracy']:8.4f} {run['seconds']:8.2f}")
    same = all(abs(ours[key] - theirs[key]) < 1e-9 for key in ("accuracy", "val_accuracy"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

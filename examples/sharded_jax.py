"""The generated JAX step, jitted over a batch sharded across devices: here, host (CPU) devices.

    python examples/sharded_jax.py [--devices 2] [--steps 50] [--dtype float32|float64] [--out FILE]

The network and data are examples/softmax_classifier.toml's (4 → 8 → 6 → 3,
ReLU, softmax with cross-entropy, samples as rows; 24 samples), read by
examples/classifier.py.  JAX is asked
for ``--devices`` CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count``,
set before JAX is imported); on a machine with GPUs or TPUs, leave the flag out
and the mesh is made of those.  A one-axis mesh ``("batch",)`` holds:

* X and Y sharded over the batch axis (``NamedSharding(mesh, P("batch", None))``:
  each device holds a slice of the rows);
* the parameters replicated (``NamedSharding(mesh, P())``).

``jax.jit`` of the generated ``step``, given arrays so placed, is compiled once
for the mesh: each device computes its slice's part of every gradient, and XLA
adds the all-reduce that sums them (the cost is a sum over samples), so every
device makes the same update and the parameters stay replicated.  Nothing in
the generated code changes.  Under ``jit`` the targets are traced, so the check
that each target row is a distribution runs once here, unjitted, on the data.

It prints the cost every ten steps and, with ``--out``, writes the parameters
it started from (``start_W1``, …) and those it ended with (``W1``, …) to a .npz
file.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from classifier import LR, SEED, data, derivation, sizes  # beside this file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--out", help="write the first and the final parameters to this .npz file")
    args = parser.parse_args(argv)
    X, Y = data(args.dtype)
    if args.devices < 1 or len(X) % args.devices or args.steps < 0:
        parser.error("--devices must divide the 24 samples, and --steps not be negative")
    # before JAX is imported: it reads the flag once, when it starts
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={args.devices}").strip()
    import jax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    jax.config.update("jax_enable_x64", args.dtype == "float64")
    devices = jax.devices()[:args.devices]
    if len(devices) < args.devices:
        parser.error(f"JAX has {len(jax.devices())} devices here, not {args.devices}")
    mesh = Mesh(np.array(devices), ("batch",))
    rows, replicated = NamedSharding(mesh, P("batch", None)), NamedSharding(mesh, P())

    f = derivation().compiled("jax")
    start = f.init_params(SEED, args.dtype, **sizes())
    f.cost(start, X, Y)  # unjitted, once: the targets are checked
    X, Y = jax.device_put(X, rows), jax.device_put(Y, rows)
    params = jax.device_put(start, replicated)
    # compiled once, for these shapes, dtypes and placements; the text is what XLA made of it for the mesh
    step = jax.jit(f.step, out_shardings=replicated).lower(params, X, Y, LR).compile()
    cost = jax.jit(f.cost)
    reduces = step.as_text().count(" all-reduce(") + step.as_text().count(" all-reduce-start(")
    print(f"{len(devices)} device{'s' if len(devices) > 1 else ''} ({devices[0].platform}), X and Y sharded "
          f"{X.sharding.spec}, parameters {params['W1'].sharding.spec}, {reduces} all-reduce"
          f"{'s' if reduces != 1 else ''} in the compiled step, {args.dtype}:", flush=True)
    for k in range(args.steps + 1):
        if k % 10 == 0 or k == args.steps:
            print(f"step {k:3d}  cost {float(cost(params, X, Y)):.6g}", flush=True)
        if k < args.steps:
            params = step(params, X, Y, LR)
    if args.out:
        np.savez(args.out, **{f"start_{name}": np.asarray(value) for name, value in start.items()},
                 **{name: np.asarray(value) for name, value in params.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())

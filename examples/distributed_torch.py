"""Data-parallel training with the generated PyTorch code: processes on this machine, gloo, gradients all-reduced.

    python examples/distributed_torch.py [--processes 2] [--steps 50] [--dtype float32|float64]
                                         [--ways all_reduce ddp] [--out FILE]

The network and data are examples/softmax_classifier.toml's (4 → 8 → 6 → 3,
ReLU, softmax with cross-entropy, samples as rows; 24 samples), read by
examples/classifier.py.  symbackprop
derives the network once, here, and writes its PyTorch module; every process
imports only that module and torch.  Each process starts from the same
parameters (``init_params`` with one seed) and holds its own slice of the
batch's rows.  One step, in every process:

1. the generated ``gradients`` on its slice;
2. ``dist.all_reduce(g, SUM)`` of each gradient: the cost is a sum over samples,
   so the batch's gradient is the sum of the slices';
3. the same update ``p -= lr g``, so the copies stay equal.

The generated ``step`` fuses the gradient into the update (``addmm_``), so it
has no place for the all-reduce; it is what one process uses on the whole
batch, and tests/test_distributed.py checks that this run ends with its
parameters.  With ``--ways ddp`` the processes instead train the generated
``Network`` (an ``nn.Module`` whose backward is the derived formulas) under
``DistributedDataParallel`` with ``torch.optim.SGD``: DDP all-reduces the
gradients itself, as their mean, so each process's cost is scaled by the number
of processes to make that mean the batch's sum.

(``--ways all_reduce ddp`` trains both ways, one after the other, from the same
start.)  Rank 0 prints the cost every ten steps and, with ``--out``, writes the
final parameters to a .npz file, keyed by way and name (``all_reduce_W1``).
The processes meet on a free port of 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import multiprocessing
import os
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np

from classifier import LR, SEED, data, derivation, sizes  # beside this file

TIMEOUT = 60  # seconds a process waits for the others
WAYS = {"all_reduce": "all_reduce of the generated gradients",
        "ddp": "DistributedDataParallel of the generated nn.Module"}


def write_module(folder: Path) -> Path:
    """The generated PyTorch module, written once for every process to import."""
    path = folder / "classifier_torch.py"
    path.write_text(derivation().code("torch"), encoding="utf-8")
    return path


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loopback() -> str | None:
    """The name of this machine's loopback interface (lo, lo0), if it has one."""
    return next((name for _, name in socket.if_nameindex() if name.startswith("lo")), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, module_path: str, widths: dict, args) -> None:
    """One process: torch is imported here, in the processes that train, not in the one that derives."""
    interface = loopback()
    if interface:  # gloo talks over the loopback interface only: nothing leaves the machine
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # the processes share the machine's cores
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=TIMEOUT))
    try:
        f = load_module(Path(module_path))
        dtype = getattr(torch, args.dtype)
        X, Y = (torch.from_numpy(a).to(dtype) for a in data())
        X, Y = torch.tensor_split(X, world)[rank], torch.tensor_split(Y, world)[rank]  # this process's rows
        final = {}
        for way in args.ways:
            if rank == 0:
                print(f"{world} processes, gloo, {WAYS[way]}, {args.dtype}:", flush=True)
            train = train_ddp if way == "ddp" else train_all_reduce
            params = train(f, X, Y, dtype, widths, world, args.steps, rank)
            final.update({f"{way}_{name}": value.detach().numpy() for name, value in params.items()})
        if rank == 0 and args.out:
            np.savez(args.out, **final)
    finally:
        dist.destroy_process_group()


def train_all_reduce(f, X, Y, dtype, widths, world, steps, rank):
    """The generated gradients on this slice, summed over the processes, then the same update in each."""
    import torch.distributed as dist

    params = f.init_params(SEED, dtype, **widths)
    for step in range(steps + 1):
        C, grads = f.cost_and_gradients(params, X, Y)
        report(step, steps, C, rank)
        if step == steps:
            break
        for name, gradient in grads.items():
            dist.all_reduce(gradient, op=dist.ReduceOp.SUM)
            params[name].sub_(gradient, alpha=LR)
    return params


def train_ddp(f, X, Y, dtype, widths, world, steps, rank):
    """The generated nn.Module under DistributedDataParallel, trained by torch.optim.SGD."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    model = DistributedDataParallel(f.Network(SEED, dtype, **widths))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for step in range(steps + 1):
        C = model(X, Y)
        report(step, steps, C.detach().clone(), rank)
        if step == steps:
            break
        optimizer.zero_grad()
        (C * world).backward()  # DDP averages the processes' gradients: the mean of world × C is their sum
        optimizer.step()
    return model.module.params()


def report(step, steps, C, rank):
    """The batch's cost (the sum of the slices'), printed by rank 0 every ten steps and at the end."""
    import torch.distributed as dist

    dist.all_reduce(C, op=dist.ReduceOp.SUM)
    if rank == 0 and (step % 10 == 0 or step == steps):
        print(f"step {step:3d}  cost {float(C):.6g}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--ways", nargs="+", choices=list(WAYS), default=["all_reduce"],
                        help="all_reduce: the generated gradients, all-reduced; ddp: the generated nn.Module "
                             "under DistributedDataParallel (both: one after the other, from the same start)")
    parser.add_argument("--out", help="write the final parameters to this .npz file (all_reduce_W1, …, ddp_W1, …)")
    args = parser.parse_args(argv)
    if args.processes < 1 or args.processes > len(data()[0]) or args.steps < 0:
        parser.error("--processes must be from 1 to the 24 samples, and --steps not negative")
    widths, port = sizes(), free_port()
    with tempfile.TemporaryDirectory() as folder:
        module_path = write_module(Path(folder))
        # spawned, not forked: each process starts clean and imports torch itself (the parent never does)
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=worker, args=(rank, args.processes, port, str(module_path),
                                                          widths, args)) for rank in range(args.processes)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(TIMEOUT + 60)
        for process in processes:  # one that failed leaves the others waiting for it until the timeout
            if process.is_alive():
                process.terminate()
        failed = [rank for rank, process in enumerate(processes) if process.exitcode != 0]
    if failed:
        print(f"error: process{'es' if len(failed) > 1 else ''} {', '.join(map(str, failed))} failed",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

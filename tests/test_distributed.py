"""The ways to scale (docs/targets.md): data-parallel PyTorch over two processes (gloo) and the JAX step jitted
over a batch sharded across two host devices end with the parameters one process reaches on the same data
(PyTorch's generated step; for JAX, the NumPy module's, from the parameters JAX started from).

Each example runs as its own program (a fresh interpreter: JAX reads its device count when it starts, and
the PyTorch processes are spawned); most of each run's few seconds is importing the engines.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symbackprop import derive, load_spec
from test_targets import engine

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
STEPS = 4


def example(name: str = "classifier"):
    """examples/NAME.py as a module, not run: by default the examples' shared network, data, seed and rate."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, *arguments: str) -> str:
    """Run examples/NAME.py with this tree's symbackprop; its output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("XLA_FLAGS", None)
    result = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *arguments], capture_output=True,
                            text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    return result.stdout


def test_torch_data_parallel_over_two_gloo_processes_ends_where_one_process_does(tmp_path):
    torch = engine("torch")
    out = tmp_path / "final.npz"
    printed = run("distributed_torch", "--processes", "2", "--steps", str(STEPS), "--dtype", "float64",
                  "--ways", "all_reduce", "ddp", "--out", str(out))
    module = example()
    f = derive(load_spec(module.SPEC)).compiled("torch")
    params = f.init_params(module.SEED, torch.float64, **module.sizes())
    start = {name: value.clone() for name, value in params.items()}
    X, Y = (torch.from_numpy(a) for a in module.data())
    costs = [float(f.cost(params, X, Y))]
    for _ in range(STEPS):  # one process, the whole batch, the generated step
        f.step(params, X, Y, module.LR)
    costs.append(float(f.cost(params, X, Y)))
    assert printed.count("2 processes, gloo") == 2
    assert printed.count(f"step   0  cost {costs[0]:.6g}\n") == 2
    assert printed.count(f"step   {STEPS}  cost {costs[1]:.6g}\n") == 2
    with np.load(out) as final:
        assert sorted(final.files) == sorted(f"{way}_{name}" for way in ("all_reduce", "ddp") for name in params)
        for way in ("all_reduce", "ddp"):
            for name, value in params.items():
                assert not np.allclose(final[f"{way}_{name}"], start[name].numpy()), f"{way}: {name} unchanged"
                np.testing.assert_allclose(final[f"{way}_{name}"], value.numpy(), rtol=1e-12, atol=1e-14,
                                           err_msg=f"{way}: {name}")


def test_jax_step_jitted_over_a_batch_sharded_across_two_devices_ends_where_one_process_does(tmp_path):
    # JAX runs only in the example's own process: imported here, it would make every later test's
    # subprocess fork a multithreaded process.  The one process is the NumPy module, from JAX's start.
    if importlib.util.find_spec("jax") is None:
        engine("jax")  # skips here, fails in CI
    out = tmp_path / "final.npz"
    printed = run("sharded_jax", "--devices", "2", "--steps", str(STEPS), "--dtype", "float64", "--out", str(out))
    module = example()
    n = derive(load_spec(module.SPEC)).compiled("numpy")
    X, Y = module.data()
    with np.load(out) as saved:
        start = {name: saved[f"start_{name}"] for name in n.params}
        final = {name: saved[name] for name in n.params}
    params = start
    costs = [float(n.cost(params, X, Y))]
    for _ in range(STEPS):  # one process, the whole batch
        params = n.step(params, X, Y, module.LR)
    costs.append(float(n.cost(params, X, Y)))
    first = printed.splitlines()[0]  # the batch split over two devices, and XLA summing their parts
    assert re.match(r"2 devices \(cpu\), X and Y sharded P(artitionSpec)?\('batch', None\), parameters "
                    r"P(artitionSpec)?\(\), [1-9]\d* all-reduces? in the compiled step, float64:$", first), first
    assert f"step   0  cost {costs[0]:.6g}\n" in printed and f"step   {STEPS}  cost {costs[1]:.6g}\n" in printed
    for name, value in params.items():
        assert not np.allclose(final[name], start[name]), f"{name} unchanged"
        np.testing.assert_allclose(final[name], value, rtol=1e-12, atol=1e-14, err_msg=name)


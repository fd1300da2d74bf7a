"""Generated NumPy code: equal to the symbolic gradients and finite differences, stable, fast-shaped, strict.

The property test draws random networks (every activation including custom
formulas, every cost, both layouts, with and without biases, one sample or a
batch, numeric or symbolic sizes, weight decay) and compares the in-process
functions and the standalone module, imported from a file, with ``evaluate``
of the derived gradients and with central finite differences of the cost.
"""

import ast
import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sympy import HadamardPower, HadamardProduct, MatrixSymbol, OneMatrix, Symbol

from symbackprop import (
    ACTIVATIONS,
    Dense,
    Network,
    ShapeError,
    SpecError,
    TrainingError,
    custom_activation,
    derive,
    evaluate,
    random_values,
)
from network_strategies import HIDDEN, concrete_sizes, networks

from symbackprop.cli import main
from symbackprop.outputs.codegen import _custom_helper, compile_numpy, module_source
from symbackprop.calculus.expressions import Broadcast, Elementwise, Named, Softmax, SumEntries
from symbackprop.checking.gradients import directional_difference
from symbackprop.printing.numpy import NumPyCodePrinter, to_numpy
from symbackprop.outputs.templating import template_folder

ROOT = Path(__file__).resolve().parent.parent
def classifier(layout="columns", batch="m"):
    return Network(6, [Dense(5, "sigmoid"), Dense(4, "sigmoid"), Dense(3, "softmax")],
                   cost="softmax_cross_entropy", layout=layout, batch=batch)


def arrays(net, seed=0, **sizes):
    values = random_values(net, seed=seed, sizes=sizes)
    params = {name: np.asarray(values[name]) for name in net.parameter_shapes()}
    return values, params


def import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hyper(values):
    return {"lam": values["lam"]} if "lam" in values else {}


# --- equal to the derivation ----------------------------------------------------------


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(net=networks(max_depth=4, max_width=5), seed=st.integers(0, 2**16))
def test_generated_functions_and_module_equal_evaluate_and_finite_differences(net, seed, tmp_path):
    d = derive(net)
    values, params = arrays(net, seed, **concrete_sizes(net, seed, largest=4))
    with np.errstate(all="ignore"):
        output = evaluate(d.output, values)
    # stacked cubic activations can overflow: nothing to compare then
    assume(np.all(np.isfinite(output)) and np.all(np.abs(output) < 1e6))
    assume(net.cost.name.endswith("squared_error") or np.all((output > 1e-9) & (output < 1 - 1e-9)))
    source = module_source(d)
    path = tmp_path / f"generated_{seed}.py"
    path.write_text(source, encoding="utf-8")
    X, Y, extra = values["X"], values["Y"], hyper(values)
    rng = np.random.default_rng(seed)
    standalone = import_file(path, f"generated_{seed}")
    standalone._BLAS.append(standalone._scipy_blas())  # step_inplace through SciPy's BLAS, the second choice
    for f in (compile_numpy(d), standalone):
        assert np.allclose(f.forward(params, X), output, rtol=1e-10, atol=1e-12)
        assert np.isclose(f.cost(params, X, Y, **extra), evaluate(d.cost, values), rtol=1e-10, atol=1e-12)
        gradients = f.gradients(params, X, Y, **extra)
        assert list(gradients) == list(d.gradients)
        for name, gradient in d.gradients.items():
            expected = evaluate(gradient, values)
            assert gradients[name].shape == expected.shape
            assert np.allclose(gradients[name], expected, rtol=1e-9, atol=1e-12), name
        name = list(params)[seed % len(params)]
        direction = rng.normal(size=params[name].shape)
        if "relu" not in str([a.name for a in net.activations]):  # a kink may sit inside the difference
            analytic = float(np.sum(gradients[name] * direction))
            numeric = directional_difference(d.cost, values, name, direction, step=1e-4)
            assert abs(analytic - numeric) <= 1e-6 * max(abs(analytic), abs(numeric), 1e-3), (name, analytic, numeric)
        new = f.step(params, X, Y, 0.05, **extra)
        updated = {k: v.copy() for k, v in params.items()}
        assert f.step_inplace(updated, X, Y, 0.05, **extra) is None
        for k in params:
            assert np.allclose(new[k], params[k] - 0.05 * gradients[k], rtol=1e-12, atol=1e-14)
            assert np.allclose(updated[k], new[k], rtol=1e-12, atol=1e-14)


def test_standalone_module_runs_in_a_fresh_interpreter_with_only_numpy(tmp_path):
    net = Network("n_0", [Dense("n_1", "tanh"), Dense(3, "x**3/3 + x", bias=False), Dense(2, "sigmoid")],
                  cost="binary_cross_entropy", batch="m", weight_decay="lam")
    d = derive(net)
    (tmp_path / "net.py").write_text(d.numpy_source(), encoding="utf-8")
    values, params = arrays(net, seed=3, n_0=4, n_1=5, m=6)
    np.savez(tmp_path / "values.npz", X=values["X"], Y=values["Y"], **params)
    script = """
import json, sys
import numpy as np
import net
data = np.load("values.npz")
params = {k: data[k] for k in net.PARAMS}
g = net.gradients(params, data["X"], data["Y"], lam=LAM)
np.savez("out.npz", cost=net.cost(params, data["X"], data["Y"], lam=LAM), **g)
print(json.dumps({"modules": sorted(m for m in sys.modules if m.split(".")[0] in ("sympy", "symbackprop", "jinja2")),
                  "params": list(net.PARAMS), "shapes": {k: list(v) for k, v in net.SHAPES.items()},
                  "init": {k: list(v.shape) for k, v in net.init_params(0, n_0=4, n_1=5).items()}}))
""".replace("LAM", repr(values["lam"]))
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["modules"] == []
    assert report["params"] == ["W1", "b1", "W2", "W3", "b3"]
    assert report["shapes"]["W1"] == ["n_1", "n_0"] and report["shapes"]["W2"] == [3, "n_1"]
    assert report["init"] == {"W1": [5, 4], "b1": [5, 1], "W2": [3, 5], "W3": [2, 3], "b3": [2, 1]}
    out = np.load(tmp_path / "out.npz")
    assert np.isclose(out["cost"], evaluate(d.cost, values))
    for name, gradient in d.gradients.items():
        assert np.allclose(out[name], evaluate(gradient, values), rtol=1e-10)
    tree = ast.parse(d.numpy_source())
    imports = [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    # ctypes and SciPy only inside the BLAS look-up, on first use
    assert imports == ["from threading import get_ident as _thread_id", "import numpy as np"]


_BACKENDS = """
import sys
import numpy as np
import net
choice = sys.argv[1]
if choice == "scipy":  # NumPy's BLAS not found: SciPy's wrappers
    net._BLAS.append(net._scipy_blas())
elif choice == "none":  # neither: as if SciPy were not installed either
    sys.modules["scipy"] = None
    net._numpy_cblas = lambda: None
address, functions, make = net._blas() or (None, {}, {})
data = np.load("values.npz")
params = {k: data[k].copy() for k in net.PARAMS}
kept = dict(params)
new = net.step(params, data["X"], data["Y"], 0.1)
net.step_inplace(params, data["X"], data["Y"], 0.1)
net.step_inplace({k: v.copy() for k, v in kept.items()}, data["X"], data["Y"], 0.1)  # the workspace again
assert all(params[k] is kept[k] for k in params)
assert all(np.allclose(params[k], new[k], rtol=1e-12, atol=1e-14) for k in params), choice
gemm = functions.get("dgemm")
import ctypes
print("ctypes" if isinstance(gemm, ctypes._CFuncPtr) else getattr(gemm, "__module__", None), len(net._WORKSPACES))
"""


@pytest.mark.parametrize("choice, backend, workspaces", [("numpy", "ctypes", 1), ("scipy", "net", 1),
                                                         ("none", "None", 0)])
def test_standalone_module_steps_in_place_through_numpys_blas_scipys_or_the_plain_step(tmp_path, choice,
                                                                                      backend, workspaces):
    net = Network(3, [Dense(4, "tanh"), Dense(2, "softmax")], cost="softmax_cross_entropy", batch="m")
    d = derive(net)
    (tmp_path / "net.py").write_text(d.numpy_source(), encoding="utf-8")
    values, params = arrays(net, seed=1, m=5)
    np.savez(tmp_path / "values.npz", X=values["X"], Y=values["Y"], **params)
    run = subprocess.run([sys.executable, "-c", _BACKENDS, choice], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    # NumPy's own OpenBLAS through ctypes (NumPy's wheels bundle it), SciPy's behind the module's adapters,
    # or, with neither, the plain step copied in (no workspace)
    assert run.stdout.split() == [backend, str(workspaces)]


def test_the_blas_of_step_inplace_is_the_library_numpy_loaded_and_agrees_with_numpy():
    import ctypes
    import os

    f = derive(classifier()).numpy()
    address, functions, make = f.namespace["_blas"]()
    assert isinstance(functions["sgemm"], ctypes._CFuncPtr)
    if sys.platform == "linux":  # one OpenBLAS of NumPy's in the process: the one its matmul calls
        numpy_libs = os.path.realpath(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs"))
        with open("/proc/self/maps") as maps:
            mapped = {line.split()[-1] for line in maps if "openblas" in line}
        ours = [path for path in mapped if os.path.realpath(path).startswith(numpy_libs)]
        assert len(ours) == 1, mapped
    assert f.namespace["_blas_agrees"](address, functions, make)
    assert f.namespace["_blas_agrees"](*f.namespace["_scipy_blas"]())
    # a function that answers wrongly, or not at all, or arguments of another width, are caught before any
    # step uses them
    assert not f.namespace["_blas_agrees"](address, {**functions, "dgemv": lambda *args: None}, make)
    assert not f.namespace["_blas_agrees"](address, {**functions, "sger": functions["sgemv"]}, make)
    assert not f.namespace["_blas_agrees"](address, functions, {**make, "d": ctypes.c_float})


def test_module_docstring_states_the_network_and_its_formulas():
    source = derive(classifier()).numpy_source()
    doc = ast.get_docstring(ast.parse(source))
    assert doc.startswith("Backpropagation for the network 6 → 5 → 4 → 3 (sigmoid, sigmoid, softmax), "
                          "cost softmax_cross_entropy.")
    for formula in ("z⁽¹⁾ = W⁽¹⁾ X + b⁽¹⁾ 1ᵀ", "δ⁽²⁾ = ∂C/∂a⁽²⁾ ⊙ σ'(z⁽²⁾) = (W⁽³⁾ᵀ δ⁽³⁾) ⊙ σ'(z⁽²⁾)",
                    "∂C/∂W⁽¹⁾ = δ⁽¹⁾ Xᵀ", "every target column is a probability distribution",
                    "step_inplace(params, X, Y, lr)"):
        assert formula in doc


# --- the shape of the code ----------------------------------------------------------------


def _function(source: str, name: str) -> ast.FunctionDef:
    return next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
@pytest.mark.parametrize("layout", ["columns", "rows"])
def test_gradients_use_the_hand_written_number_of_matrix_products(depth, layout):
    net = Network(4, [Dense(3, "tanh") for _ in range(depth - 1)] + [Dense(2, "softmax")],
                  cost="softmax_cross_entropy", layout=layout, batch="m")
    source = derive(net).numpy_source()
    products = [n for n in ast.walk(_function(source, "gradients")) if isinstance(n, ast.MatMult)]
    assert len(products) == depth + (2 * depth - 1)
    for name in ("forward", "gradients", "step", "step_inplace"):  # biases broadcast, never multiplied by ones
        assert "np.ones" not in ast.unparse(_function(source, name))


def _written(function: ast.FunctionDef, source: str) -> list[str]:
    """The arrays the calls of an in-place body write, in order: ``out=``, an ``_into`` helper's second
    argument, the matrix a BLAS call overwrites (which its comment names)."""
    lines = source.splitlines()
    written = []
    for statement in function.body:
        node = statement.value if isinstance(statement, ast.Expr) else None
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        target = next((k.value for k in node.keywords if k.arg == "out"), None)
        if name.endswith("_into") and name != "_distributions_into":  # which only reads Y
            target = node.args[1]
        elif name in ("_gemm", "_gemv", "_ger", "_axpy"):  # _gemm(*_c3)  # z1 ← W1 @ X + z1
            written.append(lines[statement.lineno - 1].split("# ")[1].split(" ←")[0])
            continue
        elif name == "np.copyto":
            target = node.args[0]
        if target is not None:
            while isinstance(target, (ast.Attribute, ast.Call)):
                target = target.value if isinstance(target, ast.Attribute) else target.func
            written.append(target.id)
    return written


def _blas_calls(source: str) -> dict[str, tuple]:
    """step_inplace's BLAS calls: the formula each one's comment states → (function, its arguments as
    ``_WORKSPACE`` describes them)."""
    tree = ast.parse(source)
    spec = next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_WORKSPACE")
    step = _function(source, "step_inplace")
    unpack = next(n for n in ast.walk(step) if isinstance(n, ast.Assign) and ast.unparse(n.value) == "w")
    entries = dict(zip([target.id for target in unpack.targets[0].elts], spec))
    lines, calls = source.splitlines(), {}
    for node in step.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                ast.unparse(node.value.func) in ("_gemm", "_gemv", "_ger", "_axpy"):
            assert entries[node.value.args[0].value.id][:2] == ("call", ast.unparse(node.value.func)[1:])
            comment = lines[node.lineno - 1].split("# ", 1)[1]
            calls[comment] = (ast.unparse(node.value.func), entries[node.value.args[0].value.id][2])
    return calls


def test_each_quantity_is_computed_once_per_call():
    source = derive(classifier()).numpy_source()
    expected = ["z1", "a1", "z2", "a2", "z3", "a3", "delta3", "delta2", "delta1"]
    for name in ("gradients", "step"):
        targets = [t.id for n in ast.walk(_function(source, name)) if isinstance(n, ast.Assign)
                   for t in n.targets if isinstance(t, ast.Name)]
        assert [t for t in targets if t[0] in "za" or t.startswith("delta")] == expected
    # in place: each quantity is written by one run of calls, then each parameter by its own
    written = [name for name in _written(_function(source, "step_inplace"), source) if not name.startswith("_")]
    runs = [name for i, name in enumerate(written) if i == 0 or name != written[i - 1]]
    assert runs == expected + ["W1", "b1", "W2", "b2", "W3", "b3"]
    # the cost needs no a3: the stable form works from z3
    assert "a3 =" not in ast.unparse(_function(source, "cost"))


def test_generated_code_reads_as_the_textbook_formulas():
    f = derive(classifier()).numpy()
    body = ast.unparse(_function(f.source, "gradients"))
    for line in ("z1 = W1 @ X\n    z1 += b1", "a1 = sigmoid(z1)", "a3 = softmax(z3, axis=0)", "delta3 = a3 - Y",
                 "delta2 = W3.T @ delta3\n    delta2 *= a2 * (1 - a2)", "'W1': delta1 @ X.T",
                 "'b1': np.sum(delta1, axis=1, keepdims=True)"):
        assert line in body
    step = ast.unparse(_function(f.source, "step"))
    assert "W1_next = lr * delta1 @ X.T\n    np.subtract(W1, W1_next, out=W1_next)" in step
    assert "'W1': W1_next" in step and "'b1': b1 - lr * np.sum(delta1, axis=1, keepdims=True)" in step
    assert "return -np.sum(Y * log_softmax(z3, axis=0))" in ast.unparse(_function(f.source, "cost"))


def test_one_sample_writes_outer_products_as_broadcasts_and_rank_one_updates():
    source = derive(classifier(batch=1)).numpy_source()
    assert "'W1': delta1 * X.T" in ast.unparse(_function(source, "gradients"))
    step = ast.unparse(_function(source, "step_inplace"))
    # W1 ← W1 − lr δ1 Xᵀ as one GER on W1's memory, b1 ← b1 − lr δ1 as one AXPY
    calls = _blas_calls(source)
    assert calls["W1 ← -lr * delta1 @ X.T + W1"] == ("_ger", (
        ("e", 101), ("i", 5), ("i", 6), ("s", "_s1"), ("b", "delta1"), ("i", 1), ("h", "X"), ("i", 1), ("h", "W1"),
        ("i", 6)))
    assert calls["b1 ← -lr * delta1 + b1"] == ("_axpy", (
        ("i", 5), ("s", "_s1"), ("b", "delta1"), ("i", 1), ("h", "b1"), ("i", 1)))
    assert "_s1.value = -lr" in step and "_p_W1.value = _address_of(W1)" in step
    lines = step.splitlines()
    last_delta = max(i for i, line in enumerate(lines) if "out=delta" in line)
    first_update = min(i for i, line in enumerate(lines) if "_ger(" in line or "_axpy(" in line)
    assert last_delta < first_update  # parameters change only once every δ is computed


def test_a_buffer_whose_last_reader_has_run_is_taken_over():
    source = derive(classifier()).numpy_source()
    # a = σ(z) is written over z, and δ³ = a³ − Y over a³ (neither is read again); a¹, a² and every δ
    # are read by the updates at the end, so they keep buffers of their own
    for line in ("('float', 'z1', (5, 'm')),  # a1", "('float', 'z3', (3, 'm')),  # a3",
                 "('float', 'z3', (3, 'm')),  # delta3", "('float', 'delta2', (4, 'm')),  # delta2"):
        assert line in source
    assert "sigmoid_into(z1, a1)" in ast.unparse(_function(source, "step_inplace"))


def test_batches_update_weights_by_gemm_and_biases_by_gemv_in_both_layouts():
    columns = ast.unparse(_function(derive(classifier()).numpy_source(), "step_inplace"))
    # CBLAS row-major (101), op = the matrix (111) or its transpose (112); a size, a number, a buffer of
    # the workspace, an array or scalar each call sets
    assert "np.copyto(z1, b1)\n    _gemm(*_c1)" in columns
    calls = _blas_calls(derive(classifier()).numpy_source())
    assert calls["z1 ← W1 @ X + z1"][1] == (("e", 101), ("e", 111), ("e", 111), ("i", 5), ("i", "m"), ("i", 6),
                                              ("r", 1.0), ("h", "W1"), ("i", 6), ("h", "X"), ("i", "m"), ("r", 1.0),
                                              ("b", "z1"), ("i", "m"))
    assert calls["W1 ← -lr * delta1 @ X.T + W1"] == ("_gemm", (
        ("e", 101), ("e", 111), ("e", 112), ("i", 5), ("i", 6), ("i", "m"), ("s", "_s1"), ("b", "delta1"),
        ("i", "m"), ("h", "X"), ("i", "m"), ("r", 1.0), ("h", "W1"), ("i", 6)))
    assert calls["b1 ← -lr * delta1 @ _ones_m + b1"] == ("_gemv", (
        ("e", 101), ("e", 111), ("i", 5), ("i", "m"), ("s", "_s1"), ("b", "delta1"), ("i", "m"), ("b", "_ones_m"),
        ("i", 1), ("r", 1.0), ("h", "b1"), ("i", 1)))
    rows = _blas_calls(derive(classifier("rows")).numpy_source())
    assert rows["W1 ← -lr * X.T @ delta1 + W1"] == ("_gemm", (
        ("e", 101), ("e", 112), ("e", 111), ("i", 6), ("i", 5), ("i", "m"), ("s", "_s1"), ("h", "X"), ("i", 6),
        ("b", "delta1"), ("i", 5), ("r", 1.0), ("h", "W1"), ("i", 5)))
    assert rows["b1 ← -lr * delta1.T @ _ones_m + b1"] == ("_gemv", (
        ("e", 101), ("e", 112), ("i", "m"), ("i", 5), ("s", "_s1"), ("b", "delta1"), ("i", 5), ("b", "_ones_m"),
        ("i", 1), ("r", 1.0), ("h", "b1"), ("i", 1)))


def test_same_input_gives_byte_identical_source_in_any_process(tmp_path):
    spec = tmp_path / "net.toml"
    spec.write_text('[network]\ninputs = "n_0"\ncost = "binary_cross_entropy"\nbatch = "m"\nweight_decay = "lam"\n'
                    '[[layers]]\nunits = "n_1"\nactivation = "x*tanh(x)"\n'
                    '[[layers]]\nunits = 2\nactivation = "sigmoid"\n', encoding="utf-8")
    outputs = []
    for hash_seed in ("1", "2"):
        run = subprocess.run([sys.executable, "-m", "symbackprop", "derive", str(spec), "--numpy", "-"],
                             capture_output=True, timeout=120, env={**_environment(), "PYTHONHASHSEED": hash_seed})
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout)
    from symbackprop import load_spec

    in_process = derive(load_spec(spec)).numpy_source().encode()
    assert outputs[0] == outputs[1] == in_process == derive(load_spec(spec)).numpy_source().encode()


def _environment():
    import os

    return dict(os.environ)


# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("hidden, cost, output", [
    ("sigmoid", "softmax_cross_entropy", "softmax"),
    ("softplus", "binary_cross_entropy", "sigmoid"),
    ("tanh", "squared_error", "sigmoid"),
    ("sigmoid", "mean_squared_error", "softmax"),
])
@pytest.mark.parametrize("layout", ["columns", "rows"])
def test_large_pre_activations_neither_overflow_nor_warn(hidden, cost, output, layout):
    net = Network(2, [Dense(3, hidden), Dense(2, output)], cost=cost, layout=layout, batch=4)
    f = derive(net).numpy()
    values, params = arrays(net, seed=1)
    for name in params:  # pre-activations of ±1e3 in every layer
        params[name] = np.sign(params[name] + 0.01) * 250.0
    X = np.sign(values["X"]) * 2
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):  # underflow to 0 is fine
        warnings.simplefilter("error")
        for dtype in (np.float64, np.float32):
            typed = {k: v.astype(dtype) for k, v in params.items()}
            assert np.all(np.isfinite(f.forward(typed, X)))
            assert np.isfinite(f.cost(typed, X, values["Y"]))
            assert all(np.all(np.isfinite(g)) for g in f.gradients(typed, X, values["Y"]).values())


@pytest.mark.parametrize("activation", HIDDEN + ["softmax"])
def test_float32_in_gives_float32_out(activation):
    net = Network(3, [Dense(4, activation if activation != "softmax" else "tanh"), Dense(2, activation)],
                  layout="rows", batch="m", weight_decay=0.5)
    f = derive(net).numpy()
    values, params = arrays(net, seed=2, m=5)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    X, Y = values["X"], values["Y"]  # float64 data take the parameters' dtype
    results = [f.forward(p32, X), f.cost(p32, X, Y), *f.gradients(p32, X, Y).values(),
               *f.step(p32, X, Y, np.float64(0.1)).values()]
    assert {r.dtype for r in results} == {np.dtype(np.float32)}
    before = {k: v.copy() for k, v in p32.items()}
    f.step_inplace(p32, X, Y, np.float64(0.1))
    assert all(p32[k].dtype == np.float32 and not np.array_equal(p32[k], before[k]) for k in p32)


def test_symbolic_sizes_take_any_concrete_sizes():
    f = derive(Network("n_0", [Dense("n_1", "tanh"), Dense(2)], batch="m")).numpy()
    for n_0, n_1, m in ((3, 4, 5), (1, 7, 2), (6, 1, 1)):
        params = f.init_params(1, n_0=n_0, n_1=n_1)
        rng = np.random.default_rng(0)
        g = f.gradients(params, rng.normal(size=(n_0, m)), rng.normal(size=(2, m)))
        assert {k: v.shape for k, v in g.items()} == {k: v.shape for k, v in params.items()}


def _traced_peak(call) -> int:
    """The bytes tracemalloc traces at the peak of one ``call``."""
    import tracemalloc

    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_step_inplace_updates_the_callers_arrays_without_parameter_sized_temporaries():
    net = Network(500, [Dense(400, "sigmoid"), Dense(10, "softmax")], cost="softmax_cross_entropy")
    f = derive(net).numpy()
    params = f.init_params(0)
    arrays_before = {k: v for k, v in params.items()}
    X, Y = np.ones((500, 1)), np.eye(10)[:, :1]
    expected = f.step(params, X, Y, 0.1)
    f.step_inplace({k: v.copy() for k, v in params.items()}, X, Y, 0.1)  # work arrays allocated once
    peak = _traced_peak(lambda: f.step_inplace(params, X, Y, 0.1))
    assert all(params[k] is arrays_before[k] for k in params)
    assert all(np.allclose(params[k], expected[k]) for k in params)
    assert peak < params["W1"].nbytes / 4  # NumPy's own iteration buffers (~130 kB) aside, nothing W-sized


@pytest.mark.parametrize("hidden, cost, output", [
    ("sigmoid", "softmax_cross_entropy", "softmax"), ("tanh", "binary_cross_entropy", "sigmoid"),
    ("relu", "squared_error", "identity"), ("leaky_relu", "mean_squared_error", "tanh"),
    ("softplus", "half_squared_error", "sigmoid"),
])
@pytest.mark.parametrize("layout, dtype, batch", [("columns", np.float64, 24), ("rows", np.float32, 24),
                                                   ("columns", np.float32, 1), ("rows", np.float64, 1)])
def test_step_inplace_allocates_nothing_per_step_after_the_first(hidden, cost, output, layout, dtype, batch):
    net = Network(120, [Dense(90, hidden), Dense(60, hidden, skip_from=None), Dense(8, output)], cost=cost,
                  layout=layout, batch="m", weight_decay=0.01)
    f = derive(net).numpy()
    params = f.init_params(0, dtype=dtype)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, batch) if layout == "columns" else (batch, 120)).astype(dtype)
    Y = rng.random(size=(8, batch) if layout == "columns" else (batch, 8)).astype(dtype)
    if cost == "softmax_cross_entropy":
        Y /= Y.sum(axis=0 if layout == "columns" else 1, keepdims=True)
    arrays_before = dict(params)
    expected = f.step(f.step(params, X, Y, 0.01), X, Y, 0.01)
    f.step_inplace(params, X, Y, 0.01)  # the first call makes the workspace
    peak = _traced_peak(lambda: f.step_inplace(params, X, Y, 0.01))
    assert all(params[k] is arrays_before[k] for k in params)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert all(np.allclose(params[k], expected[k], rtol=tolerance, atol=tolerance * np.max(np.abs(expected[k])))
               for k in params)
    # the smallest z, a or δ holds 8 × 24 values; what is traced is a few small NumPy objects and the
    # iteration buffer of a broadcast (the softmax's sums), never an array of the network's
    assert peak < 4096, peak


def test_step_inplace_of_a_parameter_updated_by_a_whole_matrix_axpy():
    from symbackprop import Model

    # B1 is m wide: its update is one AXPY over all h·m entries, a length the workspace multiplies out
    model = Model(inputs={"X": [3, "m"], "Y": ["h", "m"]}, parameters={"W1": ["h", 3], "B1": ["h", "m"]},
                  forward=["z1 = W1 @ X + B1", "C = sum((z1 - Y)^2)"])
    f = derive(model).numpy()
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(2, 3)), "B1": rng.normal(size=(2, 5))}
    X, Y = rng.normal(size=(3, 5)), rng.normal(size=(2, 5))
    expected = f.step(params, X, Y, 0.1)
    f.step_inplace(params, X, Y, 0.1)
    assert all(np.allclose(params[k], expected[k], rtol=1e-13) for k in params)
    assert "('i', ('h', 'm'))" in f.source


def _classifier_and_its_step(m=5):
    """The classifier's generated functions, parameters and data of m samples, and its plain step's result."""
    net = classifier()
    f = derive(net).numpy()
    values, params = arrays(net, m=m)
    X, Y = values["X"], values["Y"]
    return f, params, X, Y, f.step(params, X, Y, 0.1)


def test_step_inplace_takes_data_that_are_not_c_ordered_or_aligned_and_threads_at_once():
    import threading

    f, params, X, Y, expected = _classifier_and_its_step()
    raw = np.zeros(X.size * 8 + 1, dtype=np.uint8)[1:].view(np.float64).reshape(X.shape)  # misaligned
    raw[...] = X
    assert not raw.flags.aligned
    frozen = X.copy()
    frozen.flags.writeable = False
    for data in (np.asfortranarray(X), raw, frozen, X[::-1][::-1]):
        given = {k: v.copy() for k, v in params.items()}
        f.step_inplace(given, data, Y, 0.1)
        assert all(np.allclose(given[k], expected[k], rtol=1e-13) for k in given)
    # threads stepping at once, each its own parameters: each thread has a workspace of its own
    results, errors = {}, []

    def run(index):
        try:
            rng = np.random.default_rng(index)
            mine = {k: v + rng.normal(scale=0.1, size=v.shape) for k, v in params.items()}
            wanted = f.step(mine, X, Y, 0.1)
            for _ in range(200):
                f.step_inplace(mine, X, Y, 0.0 + 1e-300)  # the parameters stay, the calls overlap
            f.step_inplace(mine, X, Y, 0.1)
            results[index] = all(np.allclose(mine[k], wanted[k], rtol=1e-12) for k in mine)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == {0: True, 1: True, 2: True, 3: True}


def test_a_step_inplace_that_fails_leaves_the_callers_arrays_untouched():
    net = classifier()
    f = derive(net).numpy()
    values, params = arrays(net, m=7)
    X, Y = values["X"], values["Y"]
    f.step_inplace({k: v.copy() for k, v in params.items()}, X, Y, 0.1)  # a workspace for these shapes
    before = {k: v.copy() for k, v in params.items()}
    failures = [
        (ShapeError, lambda: f.step_inplace(params, X[:, :3], Y, 0.1)),  # Y's m differs from X's
        (ShapeError, lambda: f.step_inplace(params, X[:4], Y, 0.1)),
        (ShapeError, lambda: f.step_inplace({**params, "W2": np.zeros((4, 4))}, X, Y, 0.1)),
        (TrainingError, lambda: f.step_inplace(params, X, 2 * Y, 0.1)),  # not distributions
        (TrainingError, lambda: f.step_inplace({**params, "W1": params["W1"].astype(np.float32)}, X, Y, 0.1)),
        (TrainingError, lambda: f.step_inplace({k: v for k, v in params.items() if k != "b3"}, X, Y, 0.1)),
        (TrainingError, lambda: f.step_inplace(params, X, Y, -1.0)),
    ]
    for error, call in failures:
        with pytest.raises(error):
            call()
        assert all(np.array_equal(params[k], before[k]) for k in params)


def test_step_inplace_takes_arrays_the_fast_path_cannot_through_the_plain_step():
    f, params, X, Y, expected = _classifier_and_its_step()
    cases = [({k: np.asfortranarray(v) for k, v in params.items()}, X, Y),  # not C-ordered
             ({k: v.copy() for k, v in params.items()}, X.astype(np.float32), Y),  # data of another dtype
             ({k: v.copy() for k, v in params.items()}, X.tolist(), Y),  # not an array
             ({k: v.copy() for k, v in params.items()}, np.asfortranarray(X), Y[:, ::-1][:, ::-1])]
    for given, data_X, data_Y in cases:
        kept = dict(given)
        f.step_inplace(given, data_X, data_Y, 0.1)
        assert all(given[k] is kept[k] for k in given)
        assert all(np.allclose(given[k], expected[k], rtol=1e-6) for k in given)


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("change, error, message", [
    (lambda p, X, Y: ({k: v for k, v in p.items() if k != "b2"}, X, Y), TrainingError,
     "params: missing b2; expected W1, b1, W2, b2, W3, b3"),
    (lambda p, X, Y: ({**p, "W4": p["W3"]}, X, Y), TrainingError, "params: unknown W4; expected W1, b1"),
    (lambda p, X, Y: ({**p, "W1": p["W1"].T}, X, Y), ShapeError, "W1: expected shape (5, 6), given (6, 5)"),
    (lambda p, X, Y: (p, X[:4], Y), ShapeError, "X: expected shape (6, m), given (4, 7)"),
    (lambda p, X, Y: (p, X, Y[:, :3]), ShapeError, "Y: expected shape (3, 7) (m = 7 from X), given (3, 3)"),
    (lambda p, X, Y: ({**p, "b1": p["b1"].ravel()}, X, Y), ShapeError,
     "b1: expected a 2-d array of shape (5, 1), given shape (5,)"),
    (lambda p, X, Y: ({**p, "W2": p["W2"].astype(np.float32)}, X, Y), TrainingError,
     "W2: dtype float32 differs from W1's float64; give every parameter the same dtype"),
    (lambda p, X, Y: ({**p, "W2": p["W2"].astype(complex)}, X, Y), TrainingError,
     "W2: expected a floating-point array (float32 or float64), given complex128"),
    (lambda p, X, Y: (p, X.astype(str), Y), TrainingError, "X: expected numbers, given an array of <U"),
    (lambda p, X, Y: (list(p.values()), X, Y), TrainingError, "params must be a dict of arrays keyed W1, b1"),
])
def test_bad_arguments_raise_a_clear_error(change, error, message):
    f = derive(classifier()).numpy()
    values, params = arrays(classifier(), m=7)
    args = change(params, values["X"], values["Y"])
    with pytest.raises(error) as info:
        f.gradients(*args)
    assert message in str(info.value)


def test_numeric_sizes_in_the_spec_are_checked():
    f = derive(classifier(batch=2)).numpy()
    values, params = arrays(classifier(batch=2))
    with pytest.raises(ShapeError, match=r"X: expected shape \(6, 2\), given \(6, 3\)"):
        f.forward(params, np.ones((6, 3)))


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", True])
def test_learning_rate_must_be_a_positive_number(lr):
    f = derive(classifier()).numpy()
    values, params = arrays(classifier(), m=2)
    for step in (f.step, f.step_inplace):
        with pytest.raises(TrainingError, match="lr: "):
            step(params, values["X"], values["Y"], lr)


def test_step_inplace_needs_writeable_float_arrays():
    f = derive(classifier()).numpy()
    values, params = arrays(classifier(), m=2)
    with pytest.raises(TrainingError, match="W1: step_inplace updates the caller's arrays, so W1 must be a "
                                            "writeable NumPy array, not list"):
        f.step_inplace({**params, "W1": params["W1"].tolist()}, values["X"], values["Y"], 0.1)
    frozen = params["b2"].copy()
    frozen.flags.writeable = False
    with pytest.raises(TrainingError, match="b2: .* must be a writeable NumPy array"):
        f.step_inplace({**params, "b2": frozen}, values["X"], values["Y"], 0.1)


def test_standalone_module_raises_its_own_value_errors(tmp_path):
    path = tmp_path / "classifier.py"
    path.write_text(derive(classifier()).numpy_source(), encoding="utf-8")
    module = import_file(path, "classifier")
    values, params = arrays(classifier(), m=2)
    with pytest.raises(module.ShapeError, match=r"X: expected shape \(6, m\), given \(2, 6\)") as info:
        module.forward(params, values["X"].T)
    assert isinstance(info.value, ValueError)
    with pytest.raises(module.ArgumentError, match="lr: the learning rate must be a positive finite number"):
        module.step(params, values["X"], values["Y"], -1)
    symbolic = tmp_path / "symbolic.py"
    symbolic.write_text(derive(Network("n_0", [Dense(2)])).numpy_source(), encoding="utf-8")
    module = import_file(symbolic, "symbolic")
    with pytest.raises(module.ShapeError, match=r"init_params needs the size n_0, e.g. init_params\(0, n_0=4\)"):
        module.init_params()


def test_weight_decay_symbol_is_a_required_keyword_argument():
    net = Network(3, [Dense(2, "tanh")], weight_decay="lam", batch="m")
    f = derive(net).numpy()
    values, params = arrays(net, m=2)
    g = f.gradients(params, values["X"], values["Y"], lam=0.0)
    g_decay = f.gradients(params, values["X"], values["Y"], lam=0.5)
    assert np.allclose(g_decay["W1"] - g["W1"], 2 * 0.5 * params["W1"])
    with pytest.raises(TrainingError, match="lam: expected a number, given str"):
        f.gradients(params, values["X"], values["Y"], lam="0.5")
    with pytest.raises(TypeError, match="lam"):
        f.gradients(params, values["X"], values["Y"])


@pytest.mark.parametrize("build, message", [
    (lambda: Network(3, [Dense("np")]), "the symbol 'np' is a name the generated NumPy code uses"),
    (lambda: Network(3, [Dense("sigmoid", "sigmoid")]), "the symbol 'sigmoid'"),
    (lambda: Network(3, [Dense(2, custom_activation("x**3", name="step"))]), "custom activation name 'step'"),
    (lambda: Network(3, [Dense(2, custom_activation("x**3", name="print"))]), "custom activation name 'print'"),
])
def test_names_that_clash_with_the_generated_code_are_refused(build, message):
    with pytest.raises(SpecError, match=message):
        derive(build()).numpy_source()


def test_cli_writes_the_module_and_reports_bad_input_in_one_line(tmp_path, capsys):
    target = tmp_path / "seed_step.py"
    assert main(["derive", str(ROOT / "examples" / "seed.toml"), "--numpy", str(target)]) == 0
    assert capsys.readouterr().out == ""
    seed = import_file(target, "seed_step")
    assert seed.step({"W1": np.array([[-23.1]])}, np.array([[5.7]]), np.array([[50.1]]), 0.007)["W1"][0, 0] \
        == pytest.approx(-8.5948, abs=5e-5)
    assert main(["derive", str(ROOT / "examples" / "seed.toml"), "--numpy", "-"]) == 0
    assert capsys.readouterr().out == target.read_text(encoding="utf-8")
    assert main(["derive", str(ROOT / "examples" / "seed.toml"), "--numpy", str(tmp_path / "no" / "x.py")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and err.count("\n") == 1


# --- the printer --------------------------------------------------------------------------

m, k = (Symbol(s, integer=True, positive=True) for s in "mk")
W, X, b = MatrixSymbol("W1", 3, 4), MatrixSymbol("X", 4, m), MatrixSymbol("b1", 3, 1)
D, H = MatrixSymbol("delta1", 3, m), MatrixSymbol("H", k, m)
SIGMOID = ACTIVATIONS["sigmoid"]


@pytest.mark.parametrize("expr, code", [
    (W * X + Broadcast(b, 3, m), "W1 @ X + b1"),
    (X.T * W.T + Broadcast(b.T, m, 3), "X.T @ W1.T + b1.T"),
    (D * OneMatrix(m, 1), "np.sum(delta1, axis=1, keepdims=True)"),
    (OneMatrix(1, 3) * D, "np.sum(delta1, axis=0, keepdims=True)"),
    (OneMatrix(1, k) * H * OneMatrix(m, 1), "np.sum(H)"),
    (OneMatrix(k, k) * H, "np.broadcast_to(np.sum(H, axis=0, keepdims=True), (k, m))"),
    (HadamardProduct(H, OneMatrix(k, k) * H), "H * np.sum(H, axis=0, keepdims=True)"),
    (SumEntries(Broadcast(b, 3, m)), "np.sum(np.broadcast_to(b1, (3, m)))"),
    (sympy.MatMul(2, D - MatrixSymbol("E", 3, m)), "2 * (delta1 - E)"),
    (HadamardPower(D, 2), "delta1 ** 2"),
    (HadamardPower(D, -1), "1 / delta1"),
    (-(W.T * D) + X * 2, "2 * X - W1.T @ delta1"),
    (Softmax(D, 0), "softmax(delta1, axis=0)"),
    (SIGMOID.apply(D), "sigmoid(delta1)"),
    (Elementwise("sigmoid", SIGMOID.function, D, 1), "sigmoid_grad(delta1)"),
    (ACTIVATIONS["identity"].apply(D), "delta1"),
    (SumEntries(HadamardPower(D, 2)) / (3 * m), "(1/3)*np.sum(delta1 ** 2)/m"),
])
def test_numpy_printer_writes_plain_numpy(expr, code):
    assert to_numpy(expr) == code


def test_numpy_printer_writes_derivatives_through_the_stored_output_and_custom_functions_by_name():
    z = Named("z1", W * X)
    a = Named("a1", SIGMOID.apply(z))
    printer = NumPyCodePrinter({"outputs": {z: a}})
    assert printer.doprint(HadamardProduct(W * X, Elementwise("sigmoid", SIGMOID.function, z, 1))) \
        == "(W1 @ X) * (a1*(1 - a1))"
    assert list(printer.names) == ["W1", "X", "a1"] and not printer.symbols
    cube = custom_activation("x**3", name="cube")
    assert printer.doprint(HadamardProduct(D, cube.apply(D).derivative())) == "delta1 * cube_grad(delta1)"
    assert printer.custom["cube_grad"][1] == 3 * sympy.Symbol("x", real=True) ** 2


def test_custom_activations_become_functions_that_keep_dtype_and_shape():
    net = Network(2, [Dense(3, "0*x + 3"), Dense(2, "x*tanh(x)")], batch="m")
    f = derive(net).numpy()
    assert "def phi1(x):\n    \"\"\"3, entry by entry.\"\"\"\n    return np.full_like(x, 3)" in f.source
    assert "def phi2_grad(x):" in f.source and "return x*(1 - np.tanh(x)**2) + np.tanh(x)" in f.source
    values, params = arrays(net, m=3)
    assert f.forward(params, values["X"]).shape == (2, 3)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    assert f.forward(p32, values["X"]).dtype == np.float32


def test_a_function_numpy_lacks_is_refused_clearly():
    x = sympy.Symbol("x", real=True)
    with pytest.raises(SpecError, match="the activation 'phi' uses erf.*which NumPy does not provide"):
        _custom_helper(NumPyCodePrinter(), "phi_grad", x, sympy.erf(x))


def test_templates_ship_with_the_package_and_are_found_from_a_source_tree(monkeypatch):
    assert (template_folder() / "numpy_module.py.j2").is_file()

    def not_installed(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr("importlib.resources.files", not_installed)
    assert template_folder() == ROOT / "templates"


def test_init_params_and_settings_are_validated():
    f = derive(Network("n_0", [Dense(3, "tanh")], batch="m", weight_decay="lam")).numpy()
    with pytest.raises(ShapeError, match="the size n_0 must be a positive integer"):
        f.init_params(0, n_0=0)
    with pytest.raises(ShapeError, match="the size n_0 must be a positive integer"):
        f.init_params(0, n_0=3.5)
    with pytest.raises(Exception, match="float32 or float64"):
        f.init_params(0, n_0=2, dtype=np.float16)
    params = f.init_params(0, n_0=2)
    X, Y = np.ones((2, 4)), np.ones((3, 4))
    with pytest.raises(Exception, match="float32 or float64"):
        f.gradients({k: v.astype(np.float16) for k, v in params.items()}, X, Y, lam=0.1)
    for bad in (-1.0, float("nan")):
        with pytest.raises(Exception, match="finite number ≥ 0"):
            f.cost(params, X, Y, lam=bad)

"""PyTorch and JAX code: the same plan as the NumPy module, checked against each framework's own autodiff.

The property test draws random networks (every activation including custom
formulas, every cost, both layouts, biases or not, one sample or a batch,
numeric or symbolic sizes, weight decay) and checks, in float64, that the
generated gradients equal ``torch.autograd`` / ``jax.grad`` of the generated
forward pass and the NumPy module's gradients, and that ``step`` equals the
NumPy step.  A missing package skips these tests locally and fails them in CI.
"""

import ast
import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symbackprop import Dense, Network, ShapeError, SpecError, TrainingError, derive, evaluate, random_values
from symbackprop.outputs import targets
from symbackprop.outputs.codegen import compile_numpy
from network_strategies import concrete_sizes, networks
from test_program import connected_networks


def engine(name: str):
    """The package ``name``; missing, the test skips locally and fails in CI (.ci/run installs it)."""
    if importlib.util.find_spec(name) is None:
        reason = f"{name} is not installed (pip install \"symbackprop[engines]\")"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must install it (.ci/run does)")
        pytest.skip(reason)
    module = importlib.import_module(name)
    if name == "jax":
        module.config.update("jax_enable_x64", True)
    return module


def arrays(net, seed=0, **sizes):
    values = random_values(net, seed=seed, sizes=sizes)
    params = {name: np.asarray(values[name]) for name in net.parameter_shapes()}
    return values, params


def hyper(values):
    return {"lam": float(values["lam"])} if "lam" in values else {}


def usable(d, values):
    """Outputs finite and moderate (stacked cubics overflow), inside (0, 1) for the cross-entropies."""
    with np.errstate(all="ignore"):
        output = evaluate(d.output, values)
    fine = np.all(np.isfinite(output)) and np.all(np.abs(output) < 1e6)
    return fine and (d.program.source.cost.name.endswith("squared_error")
                     or np.all((output > 1e-9) & (output < 1 - 1e-9)))


CLOSE = dict(rtol=1e-9, atol=1e-11)
PROPERTY = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(net=networks(max_depth=3, max_width=4), seed=st.integers(0, 2**16))
def test_torch_gradients_equal_autograd_and_the_numpy_module(net, seed):
    torch = engine("torch")
    d = derive(net)
    values, params = arrays(net, seed, **concrete_sizes(net, seed, largest=4))
    assume(usable(d, values))
    f, n = targets.compile(d, "torch"), compile_numpy(d)
    extra = hyper(values)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    X, Y = torch.tensor(values["X"]), torch.tensor(values["Y"])
    assert np.allclose(f.forward(tensors, X).detach().numpy(), n.forward(params, values["X"]), **CLOSE)
    auto = torch.autograd.grad(f.cost(tensors, X, Y, **extra), list(tensors.values()))
    derived = f.gradients(tensors, X, Y, **extra)
    expected = n.gradients(params, values["X"], values["Y"], **extra)
    assert list(derived) == list(d.gradients)
    for (name, gradient), by_autograd in zip(derived.items(), auto):
        assert gradient.shape == by_autograd.shape
        assert torch.allclose(gradient, by_autograd, **CLOSE), name
        assert np.allclose(gradient.detach().numpy(), expected[name], **CLOSE), name
    updated = {k: v.detach().clone() for k, v in tensors.items()}
    assert f.step(updated, X, Y, 0.05, **extra) is None
    new = n.step(params, values["X"], values["Y"], 0.05, **extra)
    for name in params:
        assert np.allclose(updated[name].numpy(), new[name], rtol=1e-12, atol=1e-13), name


@settings(PROPERTY, max_examples=12)  # JAX dispatches each operation eagerly: slow per example
@given(net=networks(max_depth=3, max_width=4), seed=st.integers(0, 2**16))
def test_jax_gradients_equal_jax_grad_and_the_numpy_module(net, seed):
    jax = engine("jax")
    jnp = jax.numpy
    d = derive(net)
    values, params = arrays(net, seed, **concrete_sizes(net, seed, largest=4))
    assume(usable(d, values))
    f, n = targets.compile(d, "jax"), compile_numpy(d)
    extra = hyper(values)
    p = {k: jnp.asarray(v) for k, v in params.items()}
    X, Y = jnp.asarray(values["X"]), jnp.asarray(values["Y"])
    auto = jax.grad(lambda q: f.cost(q, X, Y, **extra))(p)
    through_vjp = jax.grad(f.cost_vjp)(p, X, Y, *extra.values())
    derived = f.gradients(p, X, Y, **extra)
    expected = n.gradients(params, values["X"], values["Y"], **extra)
    assert list(derived) == list(d.gradients)
    for name in derived:
        assert np.allclose(derived[name], auto[name], **CLOSE), name
        assert np.allclose(through_vjp[name], auto[name], **CLOSE), name
        assert np.allclose(derived[name], expected[name], **CLOSE), name
    new = n.step(params, values["X"], values["Y"], 0.05, **extra)
    for name, value in f.step(p, X, Y, 0.05, **extra).items():
        assert np.allclose(value, new[name], rtol=1e-12, atol=1e-13), name


TABLE = [
    Network(4, [Dense(3, "tanh"), Dense(2, "sigmoid")], cost="binary_cross_entropy", batch="m"),
    Network(4, [Dense(3, "relu"), Dense(3, "softmax")], cost="softmax_cross_entropy", layout="rows", batch=5),
    Network(3, [Dense("n", "x*tanh(x)"), Dense(2, "softplus", False)], cost="mean_squared_error", batch=1,
            weight_decay="lam"),
    Network(3, [Dense(4, "leaky_relu"), Dense(2)], cost="half_squared_error", layout="rows", batch="m",
            weight_decay=0.1),
]
SIZES = {"m": 5, "n": 3}


@pytest.mark.parametrize("net", TABLE, ids=lambda net: f"{net.cost.name}-{net.layout}")
def test_torch_autograd_function_passes_gradcheck_and_the_module_trains(net):
    torch = engine("torch")
    d = derive(net)
    f = targets.compile(d, "torch")
    values, params = arrays(net, 3, **SIZES)
    extra = hyper(values)
    tensors = [torch.tensor(params[name], requires_grad=True) for name in f.PARAMS]
    X, Y = torch.tensor(values["X"]), torch.tensor(values["Y"])
    assert torch.autograd.gradcheck(f.CostFunction.apply, (X, Y, extra, *tensors))
    sizes = {s.name: SIZES[s.name] for s in net.size_symbols if s.name != "m"}
    model = f.Network(0, torch.float64, **sizes)
    assert [name for name, _ in model.named_parameters()] == list(f.PARAMS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = float(model(X, Y, **extra).detach())
    for _ in range(5):
        optimizer.zero_grad()
        model(X, Y, **extra).backward()
        optimizer.step()
    assert float(model(X, Y, **extra).detach()) < before
    assert model.predict(X).shape == tuple(evaluate(d.output, values).shape)


def test_torch_keeps_dtype_and_device_and_jax_runs_under_jit():
    torch, jax = engine("torch"), engine("jax")
    net = TABLE[0]
    d = derive(net)
    values, params = arrays(net, 1, m=4)
    f = targets.compile(d, "torch")
    p32 = {k: torch.tensor(v, dtype=torch.float32) for k, v in params.items()}
    gradients = f.gradients(p32, values["X"], values["Y"])  # X, Y taken to the parameters' dtype and device
    assert all(g.dtype == torch.float32 and g.device == p32["W1"].device for g in gradients.values())
    j = targets.compile(d, "jax")
    p = {k: jax.numpy.asarray(v, dtype=jax.numpy.float32) for k, v in params.items()}
    step = jax.jit(j.step)
    new = step(p, values["X"], values["Y"], 0.1)
    assert all(v.dtype == jax.numpy.float32 for v in new.values())
    assert np.allclose(new["W1"], step(p, values["X"], values["Y"], 0.1)["W1"])


@pytest.mark.parametrize("target", ["torch", "jax"])
def test_bad_arguments_name_the_parameter(target):
    module = engine(target)
    d = derive(TABLE[0])
    f = targets.compile(d, target)
    values, params = arrays(TABLE[0], 0, m=3)
    convert = (lambda a: module.tensor(a)) if target == "torch" else (lambda a: module.numpy.asarray(a))
    p = {k: convert(v) for k, v in params.items()}
    with pytest.raises(ShapeError, match=r"W1: expected shape \(3, 4\), given \(4, 3\)"):
        f.gradients({**p, "W1": p["W1"].T}, values["X"], values["Y"])
    with pytest.raises(ShapeError, match=r"Y: expected shape \(2, 3\) \(m = 3 from X\), given \(2, 2\)"):
        f.cost(p, values["X"], values["Y"][:, :2])
    with pytest.raises(TrainingError, match="params: missing b2; expected W1, b1, W2, b2"):
        f.forward({k: v for k, v in p.items() if k != "b2"}, values["X"])
    with pytest.raises(TrainingError, match="lr: the learning rate must be a positive finite number"):
        f.step(p, values["X"], values["Y"], -1.0)
    assert issubclass(f.ShapeError, ValueError) and f.ShapeError is ShapeError


SOFTMAX_COLUMNS = Network(3, [Dense(4, "tanh"), Dense(3, "softmax")], cost="softmax_cross_entropy", batch=4)


@pytest.mark.parametrize("target", ["torch", "jax"])
@pytest.mark.parametrize("net", [TABLE[1], SOFTMAX_COLUMNS], ids=["rows", "columns"])
def test_softmax_targets_that_are_not_distributions_are_refused_naming_y(target, net):
    module = engine(target)
    d = derive(net)
    f = d.compiled(target)
    values, params = arrays(net, 3)
    convert = module.tensor if target == "torch" else module.numpy.asarray
    p = {k: convert(v) for k, v in params.items()}
    X, Y = values["X"], values["Y"]
    sample, axis = ("row", 1) if net.layout == "rows" else ("column", 0)
    doubled, negative = Y.copy(), Y.copy()
    np.moveaxis(doubled, axis, 1)[2] *= 2
    np.moveaxis(negative, axis, 1)[3] = [1.5, -0.5, 0.0]
    head = (f"Y: softmax cross-entropy needs each target {sample} to be a probability distribution "
            f"(entries ≥ 0 summing to 1); ")
    calls = {"cost": lambda y: f.cost(p, X, y), "gradients": lambda y: f.gradients(p, X, y),
             "step": lambda y: f.step(p, X, y, 0.1)}
    if target == "torch":
        calls["CostFunction"] = lambda y: f.CostFunction.apply(convert(X), convert(y), {}, *p.values())
    else:
        calls["grad of cost_vjp"] = lambda y: module.grad(f.cost_vjp)(p, X, y)
    if target == "torch":  # a refused step changes nothing
        with pytest.raises(TrainingError):
            f.step(p, X, doubled, 0.1)
        assert all(np.array_equal(p[k].numpy(), params[k]) for k in p)
    for name, call in calls.items():
        with pytest.raises(TrainingError, match=re.escape(head + f"{sample} 2 sums to 2")):
            call(doubled)
        with pytest.raises(TrainingError, match=re.escape(head + f"{sample} 3 has an entry below 0")):
            call(negative)
        call(Y)  # distributions pass
    # float32 targets that sum to 1 only to float32's precision are distributions
    p32 = {k: convert(v.astype(np.float32)) for k, v in params.items()}
    f.gradients(p32, X.astype(np.float32), (Y * (1 + 3e-7)).astype(np.float32))
    if target == "jax":  # under jit the targets are traced: no value can raise, the check is the caller's
        assert np.isfinite(module.jit(f.cost)(p, X, doubled))


def test_bad_seeds_dtypes_and_empty_batches_are_refused_by_name():
    torch, jax = engine("torch"), engine("jax")
    for target, bits in (("torch", 64), ("jax", 32)):
        f = derive(TABLE[0]).compiled(target)
        for seed in (-1, 2**bits, 1.5, True):
            with pytest.raises(TrainingError, match=rf"seed: expected a whole number ≥ 0 and below 2\*\*{bits}"):
                f.init_params(seed, m=3)
        with pytest.raises(TrainingError, match="dtype: expected a floating"):
            f.init_params(0, "half a float")
        p = f.init_params(0)
        with pytest.raises(ShapeError, match=r"X: an empty (tensor|array) \(shape \(4, 0\)\)"):
            f.cost(p, np.zeros((4, 0)), np.zeros((2, 0)))
        with pytest.raises(TrainingError, match="lr: expected a positive number, given a whole number beyond"):
            f.step(p, np.zeros((4, 1)), np.zeros((2, 1)), 10**400)


@pytest.mark.parametrize("target", ["numpy", "torch", "jax"])
def test_same_input_gives_the_same_code_with_no_loops_and_says_what_it_implements(target):
    d = derive(TABLE[1])
    source = d.code(target)
    assert source == derive(TABLE[1]).code(target)
    assert source.startswith(f'"""Backpropagation for {d.program.title}.')
    assert "δ⁽²⁾ = ∂C/∂z⁽²⁾" in source or "δ⁽²⁾" in source
    tree = ast.parse(source)
    api = {"forward", "cost", "gradients", "cost_and_gradients", "step", "step_inplace"}
    for function in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in api):
        assert not any(isinstance(n, (ast.For, ast.While, ast.comprehension)) for n in ast.walk(function))
    if target != "numpy":
        assert "import numpy" not in source and not re.search(r"\bnp\.", source) and "cpu" not in source


def test_unknown_targets_and_missing_packages_are_clear(monkeypatch):
    d = derive(TABLE[0])
    with pytest.raises(SpecError, match="unknown code target 'tensorflow'; the targets are numpy, torch, jax, octave"):
        d.code("tensorflow")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(SpecError, match=r"needs the package 'torch', which is not installed; install it with: pip"):
        d.compiled("torch")
    assert "class CostFunction" in d.code("torch")  # writing the code needs no torch


@pytest.mark.parametrize("target, message", [
    ("jax", "the name 'jnp' is a name the generated JAX code uses"),
    ("torch", "the name 'torch' is a name the generated PyTorch code uses"),
])
def test_names_that_clash_with_a_target_are_refused(target, message):
    size = message.split("'")[1]
    with pytest.raises(SpecError, match=message):
        derive(Network(3, [Dense(size)])).code(target)


@pytest.mark.parametrize("target", ["torch", "jax"])
def test_standalone_module_imports_from_a_file_and_raises_its_own_errors(target, tmp_path):
    module = engine(target)
    path = tmp_path / f"net_{target}.py"
    path.write_text(derive(TABLE[0]).code(target), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"net_{target}", path)
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    values, params = arrays(TABLE[0], 0, m=3)
    convert = module.tensor if target == "torch" else module.numpy.asarray
    p = {k: convert(v) for k, v in params.items()}
    assert set(generated.gradients(p, values["X"], values["Y"])) == set(params)
    with pytest.raises(generated.ShapeError, match=r"X: expected shape \(4, m\), given \(3, 4\)") as info:
        generated.forward(p, values["X"].T)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, ShapeError)


def test_cli_writes_each_target_and_refuses_an_unknown_one(tmp_path, capsys):
    from symbackprop.cli import main

    spec = str(Path(__file__).resolve().parent.parent / "examples" / "seed.toml")
    for target, name in (("torch", "seed_torch.py"), ("jax", "seed_jax.py"), ("octave", "seed.m"),
                         ("numpy", "seed_numpy.py")):
        assert main(["derive", spec, "--code", target, str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_text(encoding="utf-8") == derive_spec(spec).code(target)
    capsys.readouterr()
    assert main(["derive", spec, "--code", "tensorflow", str(tmp_path / "x.py")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown code target 'tensorflow'" in err and "numpy, torch, jax, octave" in err
    assert not (tmp_path / "x.py").exists()


def derive_spec(path):
    from symbackprop.spec import load_spec

    return derive(load_spec(path))


@settings(PROPERTY, max_examples=15)
@given(net=connected_networks(), seed=st.integers(0, 2**16))
def test_skips_tied_shared_and_fixed_parameters_agree_with_autograd_in_torch(net, seed):
    torch = engine("torch")
    d = derive(net)
    values = random_values(net, seed=seed, sizes={"n": 3, "m": 2})
    assume(usable(d, values))
    params = {k: np.asarray(values[k]) for k in d.gradients}
    X, Y = values["X"], values["Y"]
    n = compile_numpy(d)
    expected, expected_step = n.gradients(params, X, Y), n.step(params, X, Y, 0.05)
    t = d.compiled("torch")
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    auto = torch.autograd.grad(t.cost(tensors, X, Y), list(tensors.values()))
    for (name, gradient), by_autograd in zip(t.gradients(tensors, X, Y).items(), auto):
        assert np.allclose(gradient.detach().numpy(), expected[name], **CLOSE), name
        assert np.allclose(by_autograd.numpy(), expected[name], **CLOSE), name
    updated = {k: v.detach().clone() for k, v in tensors.items()}
    t.step(updated, X, Y, 0.05)
    for name, value in updated.items():
        assert np.allclose(value.numpy(), expected_step[name], rtol=1e-12, atol=1e-13), name


@pytest.mark.parametrize("net, message", [
    (Network(3, [Dense("sum")]), "the symbol 'sum' is a name the generated Octave code uses"),
    (Network(3, [Dense(2, "x**3")], weight_decay="lr"), "the symbol 'lr' is a name the generated Octave code uses"),
])
def test_names_that_clash_with_the_octave_code_are_refused(net, message):
    with pytest.raises(SpecError, match=message):
        derive(net).code("octave")

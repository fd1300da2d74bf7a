"""The model as a program of named definitions: skips, tied, shared and fixed parameters, and equations.

Every gradient is compared with central finite differences of the cost,
through ``evaluate``, the in-process functions and the standalone module.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symbackprop import (
    Dense,
    Model,
    Network,
    SpecError,
    UnknownNameError,
    check,
    check_gradients,
    derive,
    evaluate,
    random_values,
)
from symbackprop.checking.gradients import directional_difference
from symbackprop.cli import main
from symbackprop.outputs.codegen import compile_numpy, module_source
from symbackprop.printing import to_text

from network_strategies import HIDDEN, OUTPUT_FOR_COST

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def import_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_gradients_match_finite_differences(d, values, tmp_path, tag, relu=False):
    """evaluate, the compiled functions and the standalone module agree, and agree with central differences."""
    program = d.program
    params = {p.name: np.asarray(values[p.name], dtype=np.float64) for p in program.trained}
    X, Y = values["X"], values["Y"]
    extra = {s.name: values[s.name] for s in program.scalars}
    path = tmp_path / f"generated_{tag}.py"
    path.write_text(module_source(d), encoding="utf-8")
    rng = np.random.default_rng(0)
    for f in (compile_numpy(d), import_file(path, f"generated_{tag}")):
        gradients = f.gradients(params, X, Y, **extra)
        assert list(gradients) == list(d.gradients)
        assert np.isclose(f.cost(params, X, Y, **extra), evaluate(d.cost, values), rtol=1e-10, atol=1e-12)
        for name, gradient in d.gradients.items():
            expected = evaluate(gradient, values)
            assert np.allclose(gradients[name], expected, rtol=1e-9, atol=1e-12), name
            if relu:
                continue  # a kink may sit inside the difference quotient
            direction = rng.normal(size=expected.shape)
            analytic = float(np.sum(expected * direction))
            numeric = directional_difference(d.cost, values, name, direction, step=1e-4)
            assert abs(analytic - numeric) <= 1e-6 * max(abs(analytic), abs(numeric), 1e-3), (name, analytic, numeric)
        updated = {k: v.copy() for k, v in params.items()}
        f.step_inplace(updated, X, Y, 0.05, **extra)
        for k in params:
            assert np.allclose(updated[k], params[k] - 0.05 * gradients[k], rtol=1e-12, atol=1e-14)


# --- random layer stacks with skips, tied weights, shared biases and fixed parameters -------------------


@st.composite
def connected_networks(draw):
    depth = draw(st.integers(1, 5))
    cost = draw(st.sampled_from(["squared_error", "half_squared_error", "binary_cross_entropy",
                                 "softmax_cross_entropy"]))
    width = draw(st.sampled_from([2, 3, "n"]))
    widths = [draw(st.sampled_from([width, width, 2, 4])) for _ in range(depth + 1)]
    layers = []
    for l in range(1, depth + 1):
        activation = draw(st.sampled_from(OUTPUT_FOR_COST[cost] if l == depth else HIDDEN))
        skips = [k for k in range(l) if widths[k] == widths[l]]
        skip = draw(st.sampled_from([None, *skips])) if skips and (l < depth or cost.endswith("squared_error")) \
            else None
        ties = [k for k in range(1, l) if (widths[l], widths[l - 1]) == (widths[k - 1], widths[k])
                and layers[k - 1].tied_to is None]
        tied = draw(st.sampled_from([None, *ties])) if ties else None
        bias = draw(st.sampled_from([True, False, "shared"]))
        layers.append(Dense(widths[l], activation, bias, skip_from=skip, tied_to=tied))
    net = Network(widths[0], layers, cost=cost, layout=draw(st.sampled_from(["columns", "rows"])),
                  batch=draw(st.sampled_from([1, 3, "m"])), weight_decay=draw(st.sampled_from([0, 0.1])))
    fixable = [name for name in net.parameter_shapes() if name.startswith("b")]
    fixed = draw(st.lists(st.sampled_from(fixable), unique=True, max_size=2)) if fixable else []
    return Network(widths[0], layers, cost=cost, layout=net.layout, batch=net.batch,
                   weight_decay=net.weight_decay, fixed={name: 0.25 for name in fixed})


@PROPERTY
@given(net=connected_networks(), seed=st.integers(0, 2**16))
def test_random_connected_stacks_agree_with_finite_differences(net, seed, tmp_path):
    d = derive(net)
    values = random_values(net, seed=seed, sizes={"n": 3, "m": 2})
    with np.errstate(all="ignore"):
        output = evaluate(d.output, values)
    assume(np.all(np.isfinite(output)) and np.all(np.abs(output) < 1e4))
    assume(net.cost.name.endswith("squared_error") or np.all((output > 1e-6) & (output < 1 - 1e-6)))
    relu = any("relu" in a.name for a in net.activations)
    assert_gradients_match_finite_differences(d, values, tmp_path, seed, relu)
    assert set(d.gradients) == {p.name for p in d.program.trained}
    assert not set(d.gradients) & set(net.fixed)


# --- random forward passes written as equations ------------------------------------------------


@st.composite
def equation_models(draw):
    """Forward passes of 1–4 steps, each a dense map with an optional bias, activation and skip, as lines."""
    columns = draw(st.booleans())
    n = draw(st.sampled_from([2, 3]))
    lines, parameters, names = [], {}, ["X"]
    steps = draw(st.integers(1, 4))
    for k in range(1, steps + 1):
        W, b = f"W{k}", f"b{k}"
        parameters[W] = (n, n)
        previous = names[-1]
        product = f"{W} @ {previous}" if columns else f"{previous} @ {W}"
        if draw(st.booleans()):
            parameters[b] = (n, 1) if columns else (1, n)
            product += f" + {b}" if draw(st.booleans()) else f" + {b} * 1"
        lines.append(f"h{k} = {product}")
        activation = draw(st.sampled_from(["tanh", "sigmoid", "softplus", "identity"]))
        term = f"{activation}(h{k})"
        skip = draw(st.sampled_from(names))
        if draw(st.booleans()):
            term += f" + {skip}"
        if draw(st.booleans()):
            term = f"{term} * {draw(st.sampled_from(names))}"  # a product reads two quantities
        lines.append(f"g{k} = {term}")
        names.append(f"g{k}")
    if draw(st.booleans()):
        lines.append(f"C = sum(({names[-1]} - Y)^2) / 2")
    else:
        lines.append(f"C = sum({names[-1]} * Y) + sum(W1 * W1)")
    shape = (n, "m") if columns else ("m", n)
    return Model(inputs={"X": shape, "Y": shape}, parameters=parameters, forward=lines,
                 layout="columns" if columns else "rows")


@PROPERTY
@given(model=equation_models(), seed=st.integers(0, 2**16))
def test_random_equation_models_agree_with_finite_differences(model, seed, tmp_path):
    d = derive(model)
    values = random_values(model, seed=seed, sizes={"m": 3})
    with np.errstate(all="ignore"):
        cost = evaluate(d.cost, values)
    assume(np.isfinite(cost) and abs(cost) < 1e6)
    assert_gradients_match_finite_differences(d, values, tmp_path, seed)
    assert check_gradients(d, values).ok


# --- worked examples ----------------------------------------------------------------------------


def test_the_classic_2_2_2_example_with_shared_fixed_biases_reproduces_the_published_numbers():
    net = Network(2, [Dense(2, "sigmoid", bias="shared"), Dense(2, "sigmoid", bias="shared")],
                  cost="half_squared_error", fixed={"b1": 0.35, "b2": 0.60})
    d = derive(net)
    assert list(d.gradients) == ["W1", "W2"]  # the biases are fixed: no gradient
    f = d.numpy()
    params = {"W1": np.array([[0.15, 0.20], [0.25, 0.30]]), "W2": np.array([[0.40, 0.45], [0.50, 0.55]])}
    X, Y = np.array([[0.05], [0.10]]), np.array([[0.01], [0.99]])
    assert f"{f.cost(params, X, Y):.9f}" == "0.298371109"
    new = f.step(params, X, Y, 0.5)
    assert f"{new['W2'][0, 0]:.8f}" == "0.35891648"  # w5
    assert f"{new['W1'][0, 0]:.9f}" == "0.149780716"  # w1
    values = {"X": X, "Y": Y, **params, "b1": [[0.35]], "b2": [[0.60]]}
    assert check_gradients(d, values).ok


def test_a_residual_network_as_a_stack_and_as_equations_gives_the_same_gradients_and_latex():
    stack = Network("n_0", [Dense("n_1", "tanh"), Dense("n_0", "tanh", skip_from=0), Dense("n_0", skip_from=2)],
                    batch="m")
    equations = Model(
        inputs={"X": ("n_0", "m"), "Y": ("n_0", "m")},
        parameters={"W1": ("n_1", "n_0"), "b1": ("n_1", 1), "W2": ("n_0", "n_1"), "b2": ("n_0", 1),
                    "W3": ("n_0", "n_0"), "b3": ("n_0", 1)},
        forward=["z1 = W1 @ X + b1", "a1 = tanh(z1)", "z2 = W2 @ a1 + b2", "a2 = tanh(z2) + X",
                 "z3 = W3 @ a2 + b3", "a3 = identity(z3) + a2", "C = sum((a3 - Y)^2)"])
    first, second = derive(stack), derive(equations)
    values = random_values(stack, seed=3, sizes={"n_0": 3, "n_1": 2, "m": 4})
    for name in first.gradients:
        assert np.allclose(evaluate(first.gradients[name], values), evaluate(second.gradients[name], values))
        assert to_text(first.gradients[name]) == to_text(second.gradients[name])
    assert first.latex() == second.latex()
    assert first.markdown() == second.markdown()


def test_the_skip_adds_its_term_to_the_adjoint_of_the_layer_it_reads():
    d = derive(Network(3, [Dense(3, "tanh"), Dense(3, "tanh"), Dense(3, skip_from=1)], batch="m"))
    step = next(s for s in d.steps if s.quantity == "a1")
    assert to_text(step.rhs) == "W⁽²⁾ᵀ δ⁽²⁾ + ∂C/∂a⁽³⁾"
    assert step.rule == "matrix product, sum"
    assert "∂C/∂a⁽³⁾ = 2 (a⁽³⁾ − Y)" in d.text()


def test_tied_weights_sum_both_uses():
    d = derive(Network(4, [Dense(2, "sigmoid"), Dense(4, tied_to=1)], batch="m"))
    assert list(d.gradients) == ["W1", "b1", "b2"]
    assert to_text(d.gradients["W1"]) == "a⁽¹⁾ δ⁽²⁾ᵀ + δ⁽¹⁾ Xᵀ"
    assert "W⁽¹⁾ᵀ a⁽¹⁾" in to_text(d.forward[2].definition)
    assert check_gradients(d).ok


def test_the_seed_written_as_equations_derives_2a_aw_minus_y():
    seed = Model(inputs={"X": (1, 1), "Y": (1, 1)}, parameters={"W1": (1, 1)},
                 forward=["a1 = W1 @ X", "C = sum((a1 - Y)^2)"])
    d = derive(seed)
    values = {"X": [[5.7]], "Y": [[50.1]], "W1": [[-23.1]]}
    assert to_text(d.gradients["W1"]) == "2 (a⁽¹⁾ − Y) Xᵀ"
    assert float(evaluate(d.gradients["W1"], values)[0, 0]) == pytest.approx(2 * 5.7 * (5.7 * -23.1 - 50.1))
    w = np.array([[-23.1]])
    f = d.numpy()
    for _ in range(20):
        w = f.step({"W1": w}, np.array([[5.7]]), np.array([[50.1]]), 0.007)["W1"]
    assert f"{w[0, 0]:.4f}" == "8.7893"
    assert check(seed, "W1", "2 * x * (x * W1 - y)").ok


def test_a_model_is_read_from_a_spec_file_and_derives_trains_and_checks(tmp_path, capsys):
    spec = tmp_path / "residual.toml"
    spec.write_text('''
[model]
inputs = { X = [2, 1], Y = [2, 1] }
parameters = { W1 = [2, 2], b1 = [2, 1], W2 = [2, 2] }
forward = ["z1 = W1 @ X + b1", "a1 = tanh(z1)", "a2 = W2 @ a1 + X", "C = sum((a2 - Y)^2)"]

[train]
x = [0.5, -0.25]
y = [0.1, 0.2]
lr = 0.05
steps = 50
''')
    assert main(["derive", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "∂C/∂W⁽²⁾ = ∂C/∂a⁽²⁾ a⁽¹⁾ᵀ" in out and out.startswith("model: inputs X (2×1)")
    assert main(["derive", str(spec), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["model"]["forward"][0] == "z1 = W1 @ X + b1" and "network" not in document
    assert [d["role"] for d in document["forward"]] == ["preactivation", "activation", "intermediate"]
    assert main(["train", str(spec)]) == 0
    costs = [float(line.split()[3]) for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    assert costs[-1] < costs[0] / 10
    assert main(["check", str(spec), "W1", "((W2.T @ grad_a2) .* dtanh(z1)) @ X.T"]) == 0
    assert main(["derive", str(spec), "--latex", str(tmp_path / "r.tex"), "--numpy", str(tmp_path / "r.py")]) == 0
    assert "def step(" in (tmp_path / "r.py").read_text()


# --- bad input ------------------------------------------------------------------------------------


DECLARED = {"inputs": {"X": (2, "m"), "Y": (2, "m")}, "parameters": {"W1": (2, 2)}}


@pytest.mark.parametrize("forward, message", [
    (["a1 = W1 @ Q", "C = sum(a1)"], "forward line 1 (a1 = W1 @ Q): unknown name 'Q'; known: X, Y, W1"),
    (["a1 = W1 @ X", "a1 = W1 @ a1", "C = sum(a1)"], "forward line 2: a1 is defined twice (first on line 1)"),
    (["a1 = W1 @ a2", "a2 = W1 @ a1", "C = sum(a2 - Y)"], "a2 is defined later, on line 2"),
    (["a1 = W1 @ X.T", "C = sum(a1)"], "forward line 1 (a1 = W1 @ X.T): '@' needs as many columns"),
    (["a1 = W1 @ X", "C = a1 - Y"], "the last line defines the cost, a scalar, but this is 2×m"),
    (["a1 = W1 @ X", "C = sum(a1 * Y)", "D = C"], "only the last line (the cost) may be a scalar"),
    (["a1 W1 @ X", "C = sum(a1)"], "forward line 1 ('a1 W1 @ X'): expected 'name = expression'"),
    (["1a = W1 @ X", "C = sum(a1)"], "'1a' is not a name to define"),
    (["a1 = W1 @ X", "C = sum(a1)"], "the forward pass never reads the input Y"),
    ([], "forward must be a list of lines"),
])
def test_bad_equations_are_errors_that_name_the_line(forward, message):
    with pytest.raises(SpecError) as info:
        Model(**DECLARED, forward=forward)
    assert message in str(info.value)


def test_a_parameter_the_cost_does_not_use_is_reported():
    with pytest.raises(SpecError, match="parameter W2 is not used by any line"):
        Model(inputs=DECLARED["inputs"], parameters={"W1": (2, 2), "W2": (2, 2)},
              forward=["a1 = W1 @ X", "C = sum((a1 - Y)^2)"])
    with pytest.raises(SpecError, match="the cost does not depend on the parameter W2"):
        derive(Model(inputs=DECLARED["inputs"], parameters={"W1": (2, 2), "W2": (2, 2)},
                     forward=["a1 = W1 @ X", "b = W2 @ X", "C = sum((a1 - Y)^2)"]))


@pytest.mark.parametrize("build, error, message", [
    (lambda: Network(2, [Dense(3), Dense(2, skip_from=2)]), SpecError, "skip_from = 2 must name an earlier layer"),
    (lambda: Network(2, [Dense(3), Dense(2, skip_from=1)]), SpecError,
     "adds a⁽1⁾ of width 3 to a layer of width 2; a skip connection needs equal widths"),
    (lambda: Network(2, [Dense(3), Dense(3, tied_to=1)]), SpecError,
     "tied_to = 1 uses W⁽1⁾ᵀ, which maps width 3 to 2, but layer 2 maps 3 to 3"),
    (lambda: Network(2, [Dense(3), Dense(2, tied_to=5)]), SpecError, "tied_to = 5 must name another layer"),
    (lambda: Network(2, [Dense(3)], fixed={"b7": 1}), UnknownNameError, "unknown parameter 'b7'; known: W1, b1"),
    (lambda: Network(2, [Dense(3)], fixed={"b1": [1, 2]}), SpecError, "fixed b1: expected shape (3, 1)"),
    (lambda: Network(2, [Dense(3)], fixed={"b1": "x"}), SpecError, "fixed b1: a value is a number"),
    (lambda: Dense(3, skip_from=-1), SpecError, "skip_from must be a layer number"),
    (lambda: Dense(3, bias="both"), SpecError, 'bias must be true, false or "shared"'),
])
def test_bad_connections_are_clear_errors(build, error, message):
    with pytest.raises(error) as info:
        build()
    assert message in str(info.value)


@pytest.mark.parametrize("spec, message", [
    ('[network]\ninputs = 2\n[[layers]]\nunits = 3\n[[layers]]\nunits = 2\nskip_from = 1\n',
     "[network]: layer 2: skip_from = 1 adds"),
    ('[network]\ninputs = 2\nfixed = { c1 = 0 }\n[[layers]]\nunits = 3\n', "unknown parameter 'c1'"),
    ('[model]\ninputs = { X = [2, 1], Y = [2, 1] }\nparameters = { W1 = [2, 2] }\nforward = ["a = W1 @ Z", "C = sum(a)"]\n',
     "[model]: forward line 1 (a = W1 @ Z): unknown name 'Z'"),
    ('[model]\ninputs = { X = [2, 1] }\nparameters = { W1 = [2, 2] }\nforward = ["C = sum(W1 @ X)"]\n',
     "[model]: inputs must declare Y"),
    ('[model]\ninputs = { X = [2, 1], Y = [2, 1] }\nparameters = { W1 = [2, 2] }\n', "[model] needs the key 'forward'"),
    ('[model]\ninputs = { X = [2, 1], Y = [2, 1] }\nparameters = { W1 = [2, 2] }\nforward = ["C = sum(W1 @ X - Y)"]\n'
     '[network]\ninputs = 2\n', "either [model] (equations) or [network]"),
])
def test_spec_errors_for_the_new_keys_are_one_line(tmp_path, capsys, spec, message):
    path = tmp_path / "bad.toml"
    path.write_text(spec)
    assert main(["derive", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and len(err.strip().splitlines()) == 1 and message in err, err


# --- depth without limits -----------------------------------------------------------------------


def test_a_deep_residual_network_derives_renders_and_generates_code():
    layers = [Dense(3, "tanh", skip_from=l - 2 if l >= 2 else None) for l in range(1, 257)]
    d = derive(Network(3, layers, batch="m"))
    assert len(d.deltas) == 256
    assert "δ⁽¹⁾" in d.text()
    assert d.latex().count(r"\delta^{(1)}") >= 1
    source = module_source(d)
    assert "delta1 =" in source
    compile(source, "<deep>", "exec")


# --- silently wrong before, refused or exact now -------------------------------------------------


def test_softmax_cross_entropy_code_refuses_targets_that_are_not_distributions():
    from symbackprop import TrainingError

    net = Network(3, [Dense(4, "tanh"), Dense(3, "softmax")], cost="softmax_cross_entropy", batch="m")
    f = derive(net).numpy()
    params = f.init_params(0)
    X = np.ones((3, 2))
    good = np.eye(3)[:, :2]
    assert set(f.gradients(params, X, good)) == {"W1", "b1", "W2", "b2"}
    with pytest.raises(TrainingError, match="each target column to be a probability distribution.*column 0 sums to 2"):
        f.gradients(params, X, 2 * good)
    with pytest.raises(TrainingError, match="probability distribution"):
        f.step(params, X, -good, 0.1)


def test_step_inplace_changes_nothing_when_it_fails_part_way():
    net = Network(2, [Dense(3, "tanh"), Dense(2)], batch="m")
    f = derive(net).numpy()
    params = {k: v * 1e154 for k, v in f.init_params(0).items()}
    params["b2"] = np.full((2, 1), 1e300)
    before = {k: v.copy() for k, v in params.items()}
    X, Y = np.ones((2, 4)), np.zeros((2, 4))
    with np.errstate(over="raise", invalid="raise"), pytest.raises(FloatingPointError):
        f.step_inplace(params, X, Y, 1.0)
    assert all(np.array_equal(params[k], before[k]) for k in params)


def test_a_weight_decay_named_like_a_quantity_is_refused():
    for name in ("W_1", "delta_1", "a_1", "z_1", "b_1"):
        with pytest.raises(SpecError, match="neither a number nor a valid symbol name"):
            Network(2, [Dense(2)], weight_decay=name)


def test_training_a_network_too_large_for_memory_is_refused_before_allocating(tmp_path, capsys):
    spec = tmp_path / "big.toml"
    spec.write_text("[network]\ninputs = 2\n[[layers]]\nunits = 1000000000\n[[layers]]\nunits = 1\n"
                    "[train]\nx = [1, 2]\ny = 1\nlr = 0.1\nsteps = 2\n")
    assert main(["train", str(spec)]) == 2
    assert "would have 4000000001 entries in all (W1 is (1000000000, 2))" in capsys.readouterr().err
    assert main(["check", str(spec), "W2", "delta2 @ a1.T"]) == 2
    assert "drawing random values for every matrix would take 4e+09 numbers" in capsys.readouterr().err

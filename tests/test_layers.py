"""The layer library: every kind against finite differences, the published backward forms, code, bad input.

The compact forms are implemented here from the papers, independently of the derivation:
Ioffe & Szegedy (2015, §3) for normalisation (along features for layer norm),
Dao et al. (2022, Appendix B) for attention.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbackprop import Dense, Network, check_gradients, derive
from symbackprop.checking.gradients import random_values
from symbackprop.errors import SpecError, SymbackpropError
from symbackprop.model.layers import Attention, BatchNorm, Dropout, Embedding, LayerNorm
from symbackprop.printing import to_text

LAYOUTS = ("columns", "rows")
REDUCTIONS = ("sum", "mean")


def _nets(layout: str, reduction: str) -> dict[str, Network]:
    common = dict(layout=layout, reduction=reduction)
    return {
        "layernorm": Network(3, [Dense(4, "tanh"), LayerNorm(), Dense(2)], batch=3, **common),
        "batchnorm": Network(3, [Dense(4, "tanh"), BatchNorm(), Dense(3, "softmax")], cost="softmax_cross_entropy",
                             batch=4, **common),
        "attention": Network(4, [Attention(3, skip_from=0), Dense(2)], batch=5, **common),
        "causal attention": Network(4, [Attention(2, causal=True), LayerNorm(skip_from=0), Dense(2)], batch=4,
                                    **common),
        "embedding": Network(6, [Embedding(6, 3), Dense(2, "sigmoid")], cost="binary_cross_entropy", batch=4,
                             **common),
        "dropout": Network(3, [Dense(4, "relu"), Dropout(0.5), Dense(2)], batch=3, **common),
        "symbolic sizes": Network("n", [LayerNorm(), Attention("d_k"), BatchNorm(), Dense(2)], batch="m", **common),
    }


CASES = [(layout, reduction, kind) for layout in LAYOUTS for reduction in REDUCTIONS for kind in _nets(layout, "sum")]


@pytest.mark.parametrize("layout, reduction, kind", CASES, ids=["-".join(c) for c in CASES])
def test_every_kind_agrees_with_finite_differences_and_its_code(layout, reduction, kind):
    d = derive(_nets(layout, reduction)[kind])
    result = check_gradients(d, seed=3)
    assert result.ok, result
    values = random_values(d.program, seed=5, sizes={"m": 4, "n": 3, "d_k": 2})
    f = d.numpy()
    params = {p.name: values[p.name] for p in d.program.trained}
    masks = {i.name: values[i.name] for i in d.program.inputs if i.kind == "mask"}
    code = f.gradients(params, values["X"], values["Y"], **masks)
    for name, gradient in d.gradients.items():
        np.testing.assert_allclose(code[name], d.evaluate(gradient, values), rtol=1e-10, atol=1e-12)


def test_the_mean_reduction_divides_the_cost_and_every_gradient_by_m():
    values = None
    for reduction in REDUCTIONS:
        d = derive(Network(3, [Dense(4, "tanh"), LayerNorm(), Dense(2)], batch=5, reduction=reduction))
        values = values or random_values(d.program, seed=2)
        if reduction == "sum":
            total, grads = d.evaluate(d.cost, values), {k: d.evaluate(g, values) for k, g in d.gradients.items()}
        else:
            assert d.evaluate(d.cost, values) == pytest.approx(total / 5)
            for k, g in d.gradients.items():
                np.testing.assert_allclose(d.evaluate(g, values), grads[k] / 5, rtol=1e-12)
    assert "mean over the samples" in d.text()


# --- the published forms, implemented from the papers ---------------------------------------------


def _paper_normalization_backward(g_y, x, gamma, eps, axis, samples):
    """Ioffe & Szegedy: ĝ = γ ⊙ g, ∂x = (1/(Nσ)) (N ĝ − Σĝ − x̂ ⊙ Σ(ĝ ⊙ x̂)) with sums along the normalised
    axis; ∂γ = Σ g ⊙ x̂ and ∂β = Σ g over the samples."""
    n = x.shape[axis]
    mu = x.mean(axis=axis, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(axis=axis, keepdims=True) + eps)
    xhat = (x - mu) / sigma
    g_hat = gamma * g_y
    dx = (n * g_hat - g_hat.sum(axis=axis, keepdims=True)
          - xhat * (g_hat * xhat).sum(axis=axis, keepdims=True)) / (n * sigma)
    return dx, (g_y * xhat).sum(axis=samples, keepdims=True), g_y.sum(axis=samples, keepdims=True)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", [LayerNorm, BatchNorm])
def test_normalisation_reaches_ioffe_and_szegedy_compact_form(kind, layout):
    d = derive(Network(4, [Dense(5, "tanh"), kind(eps=1e-3), Dense(3)], batch=6, layout=layout))
    values = random_values(d.program, seed=11)
    x, g_y = d.evaluate("a1", values), d.evaluate(d.adjoints["a2"], values)
    features = 0 if layout == "columns" else 1
    axis = features if kind is LayerNorm else 1 - features
    dx, dgamma, dbeta = _paper_normalization_backward(g_y, x, values["gamma2"], 1e-3, axis, 1 - features)
    np.testing.assert_allclose(d.evaluate(d.adjoints["a1"], values), dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d.evaluate(d.gradients["gamma2"], values), dgamma, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d.evaluate(d.gradients["beta2"], values), dbeta, rtol=1e-9, atol=1e-12)
    step = next(s for s in d.steps if s.quantity == "a1")
    assert step.rule == "normalisation"
    text = to_text(step.rhs)
    assert "x̂⁽²⁾" in text and "σ⁽²⁾" in text and "∂C/∂x̂⁽²⁾" in text  # written in x̂, σ and ĝ, not unrolled


def _paper_attention_backward(dO, Q, K, V, tau, causal):
    """Dao et al. 2022, Appendix B (rows layout): the standard attention backward pass."""
    S = tau * Q @ K.T
    if causal:
        S = np.where(np.triu(np.ones(S.shape, bool), 1), -np.inf, S)
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    O = P @ V
    dV = P.T @ dO
    dP = dO @ V.T
    dS = P * (dP - (dO * O).sum(axis=1, keepdims=True))
    return tau * dS @ K, tau * dS.T @ Q, dV


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_reaches_the_standard_backward_pass(layout, causal):
    d = derive(Network(4, [Dense(4, "tanh"), Attention(3, causal=causal), Dense(2)], batch=5, layout=layout))
    values = random_values(d.program, seed=7)
    rows = layout == "rows"
    get = (lambda name: d.evaluate(name, values)) if rows else (lambda name: d.evaluate(name, values).T)
    adjoint = {name: d.evaluate(d.adjoints[name], values) for name in ("O2", "Q2", "K2", "V2")}
    if not rows:
        adjoint = {k: v.T for k, v in adjoint.items()}
    dQ, dK, dV = _paper_attention_backward(adjoint["O2"], get("Q2"), get("K2"), get("V2"), 1 / np.sqrt(3), causal)
    np.testing.assert_allclose(adjoint["Q2"], dQ, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(adjoint["K2"], dK, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(adjoint["V2"], dV, rtol=1e-9, atol=1e-12)
    steps = {s.quantity: to_text(s.rhs) for s in d.steps}
    assert steps["S2"] == ("P⁽²⁾ ⊙ (∂C/∂P⁽²⁾ − (O⁽²⁾ ⊙ ∂C/∂O⁽²⁾) 1 1ᵀ)" if rows
                           else "P⁽²⁾ ⊙ (∂C/∂P⁽²⁾ − 1 1ᵀ (O⁽²⁾ ⊙ ∂C/∂O⁽²⁾))")
    assert steps["Q2"] == ("τ⁽²⁾ ∂C/∂S⁽²⁾ K⁽²⁾" if rows else "τ⁽²⁾ K⁽²⁾ ∂C/∂S⁽²⁾")
    assert steps["P2"] == ("∂C/∂O⁽²⁾ V⁽²⁾ᵀ" if rows else "V⁽²⁾ᵀ ∂C/∂O⁽²⁾")


def test_embedding_gradient_is_the_scatter_add_of_the_adjoint():
    for layout in LAYOUTS:
        d = derive(Network(5, [Embedding(5, 3), Dense(2)], batch=6, layout=layout))
        values = random_values(d.program, seed=1)
        columns = layout == "columns"
        ids = np.argmax(values["X"], axis=0 if columns else 1)
        G = d.evaluate(d.adjoints["a1"], values)
        expected = np.zeros(values["E1"].shape)
        for sample, word in enumerate(ids):  # repeated ids accumulate
            if columns:
                expected[:, word] += G[:, sample]
            else:
                expected[word] += G[sample]
        np.testing.assert_allclose(d.evaluate(d.gradients["E1"], values), expected, rtol=1e-12)
        f = d.numpy()
        params = {p.name: values[p.name] for p in d.program.trained}
        np.testing.assert_allclose(f.gradients(params, ids, values["Y"])["E1"], expected, rtol=1e-12)
        np.testing.assert_allclose(f.forward(params, ids), f.forward(params, values["X"]), rtol=1e-12)


def test_dropout_gradient_is_the_mask_times_the_adjoint_over_one_minus_p():
    d = derive(Network(3, [Dense(4, "tanh"), Dropout(0.25), Dense(2)], batch=5))
    values = random_values(d.program, seed=4)
    np.testing.assert_allclose(d.evaluate(d.adjoints["a1"], values),
                               values["M2"] * d.evaluate(d.adjoints["a2"], values) / 0.75, rtol=1e-12)


# --- random stacks -------------------------------------------------------------------------------


@st.composite
def stacks(draw):
    layout = draw(st.sampled_from(LAYOUTS))
    # at least 3 entries normalised together: two are ±1 whatever they were, and nearly equal ones put a
    # kink of width √ε where a difference quotient cannot resolve the gradient
    width = draw(st.integers(3, 4))
    batch = draw(st.integers(3, 4))
    layers, widths = [], [width]
    for l in range(1, draw(st.integers(1, 4)) + 1):
        kind = draw(st.sampled_from(["dense", "layernorm", "batchnorm", "attention", "dropout"]))
        same = [k for k, w in enumerate(widths) if w == widths[-1]]
        skip = draw(st.sampled_from([None, *same]))
        if kind == "dense":
            units = draw(st.sampled_from([widths[-1], 3, 4]))
            skip = skip if units == widths[-1] else None
            layers.append(Dense(units, draw(st.sampled_from(["tanh", "sigmoid", "identity"])), skip_from=skip))
            widths.append(units)
            continue
        if kind == "layernorm":
            layers.append(LayerNorm(skip_from=skip))
        elif kind == "batchnorm":
            layers.append(BatchNorm(skip_from=skip))
        elif kind == "attention":
            # d_k ≥ 2: a rank-one attention output makes a layer norm after it a sign (±x̂ whatever the scale)
            layers.append(Attention(draw(st.integers(2, 3)), causal=draw(st.booleans()), skip_from=skip))
        else:
            layers.append(Dropout(draw(st.sampled_from([0.0, 0.3]))))
        widths.append(widths[-1])
    layers.append(Dense(2))
    return Network(width, layers, layout=layout, batch=batch, reduction=draw(st.sampled_from(REDUCTIONS)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks(), st.integers(0, 2**16))
def test_random_stacks_of_every_kind_agree_with_finite_differences(net, seed):
    d = derive(net)
    assert check_gradients(d, seed=seed).ok
    values = random_values(d.program, seed=seed)
    params = {p.name: values[p.name] for p in d.program.trained}
    masks = {i.name: values[i.name] for i in d.program.inputs if i.kind == "mask"}
    code = d.numpy().gradients(params, values["X"], values["Y"], **masks)
    for name, gradient in d.gradients.items():
        np.testing.assert_allclose(code[name], d.evaluate(gradient, values), rtol=1e-9, atol=1e-11)


# --- code: stable, float32 kept, deterministic ---------------------------------------------------


def test_generated_code_is_stable_for_huge_logits_and_keeps_float32():
    d = derive(Network(4, [Attention(4, causal=True), LayerNorm(), Dense(3, "softmax")],
                       cost="softmax_cross_entropy", batch=6, layout="rows"))
    f = d.numpy()
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        params = {k: (v * 300).astype(dtype) for k, v in f.init_params(1).items()}
        X = rng.normal(size=(6, 4)).astype(dtype) * 100
        Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 6)]
        grads = f.gradients(params, X, Y)
        assert all(g.dtype == dtype and np.all(np.isfinite(g)) for g in grads.values())
        assert np.isfinite(f.cost(params, X, Y))


def test_layer_outputs_are_byte_identical_across_runs():
    net = _nets("rows", "mean")["causal attention"]
    first, second = derive(net), derive(_nets("rows", "mean")["causal attention"])
    assert first.latex() == second.latex() and first.numpy_source() == second.numpy_source()
    assert first.markdown() == second.markdown()


def test_dropout_without_a_mask_is_evaluation_mode():
    d = derive(Network(3, [Dense(4, "tanh"), Dropout(0.5), Dense(2)], batch=3))
    f = d.numpy()
    values = random_values(d.program, seed=0)
    params = {p.name: values[p.name] for p in d.program.trained}
    kept = dict(values, M2=np.full((4, 3), 0.5))  # M/(1 − p) = 1 everywhere
    np.testing.assert_allclose(f.forward(params, values["X"]), d.evaluate("a3", kept), rtol=1e-12)


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("build, message", [
    (lambda: Network(3, [Dense(3), Embedding(3, 2)]), "an embedding reads the one-hot input X, so it must be layer 1"),
    (lambda: Network(4, [Embedding(3, 2)]), "the embedding's vocab is 3 but the network's inputs are 4 wide"),
    (lambda: Network(3, [BatchNorm(), Dense(2)], batch=1), "batchnorm normalises over the batch, which is 1"),
    (lambda: Network(1, [LayerNorm(), Dense(2)]), "layernorm normalises over its width, which is 1"),
    (lambda: Dropout(1.0), "dropout p is the probability of dropping an entry"),
    (lambda: Dropout(-0.1), "dropout p is the probability of dropping an entry"),
    (lambda: Attention(0), "attention d_k must be a positive integer or a symbol name, not 0"),
    (lambda: Attention("2x"), "attention d_k '2x' is not a valid symbol name"),
    (lambda: LayerNorm(eps=0), "eps must be a small positive number"),
    (lambda: Network(3, [Embedding(3, 3), Dense(3, skip_from=0)]), "the input is one-hot"),
    (lambda: Network(3, [Dense(3), LayerNorm(), Dense(3, tied_to=2)]), "layer 2 is a layernorm layer"),
    (lambda: Network(3, [Dense(2)], reduction="avg"), "unknown reduction 'avg'; known: sum, mean"),
])
def test_bad_layers_are_clear_errors(build, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        build()


def test_bad_masks_and_ids_in_generated_code_are_clear_errors():
    d = derive(Network(5, [Embedding(5, 3), Dropout(0.25), Dense(2)], batch=4))
    f = d.numpy()
    values = random_values(d.program, seed=0)
    params = {p.name: values[p.name] for p in d.program.trained}
    ids = np.array([0, 4, 4, 1])
    cases = [
        (dict(X=ids, M2=values["M2"][:, :2]), "M2: expected a dropout mask of shape (3, 4), given shape (3, 2)"),
        (dict(X=ids, M2=values["M2"] * 2), "M2: a dropout mask holds only 0 (dropped) and 1 (kept)"),
        (dict(X=ids + 1), "X: word ids must be from 0 to 4 (the vocabulary has 5 words); given ids from 1 to 5"),
        (dict(X=ids * 0.5), "X: the embedding takes one-hot samples or a 1-d array of integer word ids"),
        (dict(X=values["X"] * 3), "X: the embedding takes one-hot samples (each column a single 1"),
    ]
    for arguments, message in cases:
        with pytest.raises(SymbackpropError, match=re.escape(message)):
            f.gradients(params, Y=values["Y"], **arguments)


def test_layer_kinds_in_spec_files(tmp_path):
    spec = tmp_path / "block.toml"
    spec.write_text('[network]\ninputs = 4\nlayout = "rows"\nbatch = 5\nreduction = "mean"\n'
                    '[[layers]]\nkind = "layernorm"\n'
                    '[[layers]]\nkind = "attention"\nd_k = 2\ncausal = true\nskip_from = 0\n'
                    '[[layers]]\nkind = "dropout"\np = 0.1\n'
                    '[[layers]]\nunits = 2\n')
    from symbackprop.spec import load_spec

    net = load_spec(spec)
    assert [layer.kind for layer in net.layers] == ["layernorm", "attention", "dropout", "dense"]
    assert check_gradients(derive(net)).ok
    spec.write_text('[network]\ninputs = 4\n[[layers]]\nkind = "atention"\nd_k = 2\n')
    run = subprocess.run([sys.executable, "-m", "symbackprop", "derive", str(spec)], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "unknown layer kind 'atention'; known: dense, layernorm, batchnorm, attention, embedding, dropout" \
        in run.stderr and "did you mean 'attention'?" in run.stderr
    spec.write_text('[network]\ninputs = 4\n[[layers]]\nkind = "attention"\n')
    run = subprocess.run([sys.executable, "-m", "symbackprop", "derive", str(spec)], capture_output=True, text=True)
    assert run.returncode == 2 and "[[layers]] #1 needs the key 'd_k'" in run.stderr


# --- the same operations in forward passes written as equations ---------------------------------


def test_normalize_and_causal_softmax_in_written_forward_passes():
    from symbackprop.model.equations import Model

    for layout, shape in (("columns", [4, "m"]), ("rows", ["m", 4])):
        features = 1 if layout == "columns" else 2
        model = Model(
            inputs={"X": shape, "Y": shape},
            parameters={"g": [4, 1] if layout == "columns" else [1, 4], "WQ": [4, 4], "WK": [4, 4]},
            forward=[f"h = g .* normalize(X, {features})",
                     "S = (WK @ h).T @ (WQ @ h)" if layout == "columns" else "S = (h @ WQ) @ (h @ WK).T",
                     f"P = causal_softmax(S, {features})",
                     "o = h @ P" if layout == "columns" else "o = P @ h",
                     "C = sum((o - Y)^2)"],
            layout=layout)
        d = derive(model)
        assert check_gradients(d, random_values(d.program, seed=1, sizes={"m": 5})).ok
        values = random_values(d.program, seed=2, sizes={"m": 5})
        P = d.evaluate("P", values)
        later = np.triu(np.ones((5, 5), bool), 1)
        assert np.all(P[later.T if layout == "columns" else later] == 0)
        written = derive(Model(inputs={"X": shape, "Y": shape}, parameters={"g": [4, 1] if layout == "columns" else [1, 4]},
                               forward=[f"mu = mean(X, {features})", f"sigma = sqrt(mean((X - mu)^2, {features}) + 1e-5)",
                                        "h = g .* ((X - mu) / sigma)", "C = sum((h - Y)^2)"], layout=layout))
        short = derive(Model(inputs={"X": shape, "Y": shape}, parameters={"g": [4, 1] if layout == "columns" else [1, 4]},
                             forward=[f"h = g .* normalize(X, {features})", "C = sum((h - Y)^2)"], layout=layout))
        values = random_values(written.program, seed=3, sizes={"m": 5})
        np.testing.assert_allclose(written.evaluate(written.gradients["g"], values),
                                   short.evaluate(short.gradients["g"], values), rtol=1e-10)


@pytest.mark.parametrize("formula, message", [
    ("normalize(X)", "normalize takes a dimension: 1 (each column) or 2 (each row)"),
    ("normalize(sum(X, 1), 1)", "normalises a single entry"),
    ("causal_softmax(X, 1)", "causal_softmax takes a square matrix of token-to-token scores"),
])
def test_bad_uses_of_the_new_functions_are_clear_errors(formula, message):
    from symbackprop.model.equations import Model

    with pytest.raises(SymbackpropError, match=re.escape(message)):
        Model(inputs={"X": [4, 3], "Y": [4, 3]}, parameters={"W": [4, 4]},
              forward=[f"h = W @ {formula}" if "sum" not in formula else f"h = W @ X + {formula}",
                       "C = sum((h - Y)^2)"])


def test_a_batch_of_one_is_refused_by_batch_normalised_code():
    d = derive(Network(3, [BatchNorm(), Dense(2)], batch="m"))
    f = d.numpy()
    params = f.init_params(0)
    assert f.gradients(params, np.ones((3, 2)), np.ones((2, 2)))["W2"].shape == (2, 3)
    with pytest.raises(SymbackpropError, match=re.escape("a normalisation over m = 1 entries makes every x̂ 0")):
        f.gradients(params, np.ones((3, 1)), np.ones((2, 1)))


def test_training_draws_a_seeded_dropout_mask_every_step(tmp_path):
    from symbackprop.training import train_spec

    def spec(p: float, seed: int) -> str:
        path = tmp_path / f"drop{p}-{seed}.toml"
        path.write_text('[network]\ninputs = 2\nbatch = 4\n[[layers]]\nunits = 6\nactivation = "tanh"\n'
                        f'[[layers]]\nkind = "dropout"\np = {p}\n[[layers]]\nunits = 1\n'
                        '[train]\nx = [[0.1, 0.5, -0.3, 0.8], [0.7, -0.2, 0.4, 0.0]]\ny = [[0.2, 0.1, -0.4, 0.5]]\n'
                        f'lr = 0.05\nsteps = 60\nseed = {seed}\n')
        return str(path)

    first, again = train_spec(spec(0.3, 1)), train_spec(spec(0.3, 1))
    other, none = train_spec(spec(0.3, 2)), train_spec(spec(0.0, 1))
    assert first.costs == again.costs  # the masks come from the seeded generator
    assert first.costs != other.costs and first.costs != none.costs  # they change with the seed, and do something
    assert first.costs[-1] < first.costs[0] / 2


def test_training_takes_word_ids_for_an_embedding(tmp_path):
    from symbackprop.training import train_spec

    path = tmp_path / "words.toml"
    table = ('[network]\ninputs = 5\nbatch = 6\nlayout = "rows"\ncost = "softmax_cross_entropy"\n'
             '[[layers]]\nkind = "embedding"\nvocab = 5\ndim = 3\n[[layers]]\nunits = 2\nactivation = "softmax"\n'
             '[train]\nx = {x}\ny = [[1, 0], [0, 1], [1, 0], [0, 1], [1, 0], [0, 1]]\nlr = 0.5\nsteps = 40\n')
    path.write_text(table.replace("{x}", "[0, 1, 2, 3, 4, 1]"))
    by_ids = train_spec(path)
    path.write_text(table.replace("{x}", str(np.eye(5, dtype=int)[[0, 1, 2, 3, 4, 1]].tolist())))
    assert train_spec(path).costs == by_ids.costs
    assert by_ids.costs[-1] < by_ids.costs[0] / 2
    path.write_text(table.replace("{x}", "[0, 1, 2, 3, 5, 1]"))
    run = subprocess.run([sys.executable, "-m", "symbackprop", "train", str(path)], capture_output=True, text=True)
    assert run.returncode == 2 and "[train].x: word ids must be from 0 to 4 (the vocabulary has 5 words)" in run.stderr


def test_another_given_matrix_of_a_written_model_is_a_required_keyword(tmp_path):
    from symbackprop.model.equations import Model

    model = Model(inputs={"X": [3, "m"], "Y": [3, "m"], "M": [3, "m"]}, parameters={"W": [3, 3]},
                  forward=["h = M .* (W @ X)", "C = sum((h - Y)^2)"])
    d = derive(model)
    f = d.numpy()
    values = random_values(d.program, seed=0, sizes={"m": 2})
    grads = f.gradients({"W": values["W"]}, values["X"], values["Y"], M=values["M"])
    np.testing.assert_allclose(grads["W"], d.evaluate(d.gradients["W"], values), rtol=1e-12)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'M'"):
        f.gradients({"W": values["W"]}, values["X"], values["Y"])
    with pytest.raises(SymbackpropError, match=re.escape("M: expected shape (3, 2), given shape (2, 2)")):
        f.gradients({"W": values["W"]}, values["X"], values["Y"], M=np.ones((2, 2)))
    spec = tmp_path / "m.toml"
    spec.write_text('[model]\ninputs = { X = [3, "m"], Y = [3, "m"], M = [3, "m"] }\nparameters = { W = [3, 3] }\n'
                    'forward = ["h = M .* (W @ X)", "C = sum((h - Y)^2)"]\n'
                    '[train]\nx = [[1, 2], [3, 4], [5, 6]]\ny = [[1, 2], [3, 4], [5, 6]]\nlr = 0.1\nsteps = 2\n')
    run = subprocess.run([sys.executable, "-m", "symbackprop", "train", str(spec)], capture_output=True, text=True)
    assert run.returncode == 2 and "the model reads the input M besides X and Y, which training does not give" \
        in run.stderr


@pytest.mark.parametrize("layout", LAYOUTS)
def test_step_and_step_inplace_of_every_kind_are_gradient_descent(layout):
    nets = _nets(layout, "mean")
    for kind, net in nets.items():
        d = derive(net)
        f = d.numpy()
        values = random_values(d.program, seed=9, sizes={"m": 4, "n": 3, "d_k": 2})
        params = {p.name: values[p.name] for p in d.program.trained}
        masks = {i.name: values[i.name] for i in d.program.inputs if i.kind == "mask"}
        X = values["X"]
        if d.program.input("input").kind == "one_hot":
            X = np.argmax(X, axis=0 if layout == "columns" else 1)  # ids: gather and scatter-add
        grads = f.gradients(params, X, values["Y"], **masks)
        expected = {k: params[k] - 0.1 * grads[k] for k in params}
        stepped = f.step(params, X, values["Y"], 0.1, **masks)
        warm = {k: v.copy() for k, v in params.items()}
        f.step_inplace(warm, X, values["Y"], 0.1, **masks)  # the next call reuses the workspace
        in_place = {k: v.copy() for k, v in params.items()}
        f.step_inplace(in_place, X, values["Y"], 0.1, **masks)
        for k in params:
            np.testing.assert_allclose(stepped[k], expected[k], rtol=1e-12, atol=1e-14, err_msg=f"{kind} {k}")
            np.testing.assert_allclose(in_place[k], expected[k], rtol=1e-12, atol=1e-14, err_msg=f"{kind} {k}")


def test_the_latex_says_what_the_layer_symbols_are(pdflatex, tmp_path):
    documents = {
        "block": derive(load_spec_example("transformer_block")).latex(standalone=True),
        "words": derive(Network(5, [Embedding(5, 3), Dropout(0.25), LayerNorm(), Dense(2)], batch="m")).latex(
            standalone=True),
    }
    block, words = documents["block"], documents["words"]
    assert r"$\tau^{(2)} = 1/\sqrt{d_k} = \frac{1}{2}$ scales the attention scores" in block
    assert r"$\epsilon$ is the normalisation's small constant ($10^{-5}$)" in block
    assert r"$\operatorname{softmax}_{\mathrm{causal}}$ gives a later token's score the weight 0" in block
    assert r"$M^{(2)}$ is a dropout mask of 0s and 1s, each entry kept with probability $1 - 0.25$" in words
    assert r"a product with $a^{(0)\top}$ adds each sample's adjoint into the embedding of its word" in words
    for name, source in documents.items():
        (tmp_path / f"{name}.tex").write_text(source, encoding="utf-8")
        run = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        log = (tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        assert run.returncode == 0 and "Overfull \\hbox" not in log, name


def load_spec_example(name: str):
    from pathlib import Path

    from symbackprop import load_spec

    return load_spec(Path(__file__).resolve().parent.parent / "examples" / f"{name}.toml")


@pytest.mark.parametrize("formula, hint", [
    ("((m * grad_xhat2 - sum(grad_xhat2, 2)) ./ (m * sigma2)) .* dtanh(z1)",
     "the term −((∂C/∂x̂⁽²⁾ ⊙ x̂⁽²⁾) 1 1ᵀ) ⊙ x̂⁽²⁾ of ∂C/∂a⁽¹⁾ is missing"),
    ("((m * grad_xhat2 - xhat2 .* sum(grad_xhat2 .* xhat2, 2)) ./ (m * sigma2)) .* dtanh(z1)",
     "the term −∂C/∂x̂⁽²⁾ 1 1ᵀ of ∂C/∂a⁽¹⁾ is missing"),
])
def test_a_normalisation_backward_without_one_of_its_terms_is_named(formula, hint):
    from symbackprop import check

    result = check(load_spec_example("batchnorm_mlp"), "delta1", formula)
    assert not result.ok and result.hint == hint


def test_a_skip_connection_left_out_of_an_adjoint_is_named():
    from symbackprop import check

    net = Network(3, [Dense(3, "tanh"), Dense(3, "tanh", skip_from=1), Dense(2)], batch=2)
    result = check(net, "delta1", "(W2.T @ delta2) .* dtanh(z1)")
    assert not result.ok and result.hint == "the term ∂C/∂a⁽²⁾ of the derived formula is missing"


def test_the_gradient_check_still_catches_a_wrong_gradient_at_every_step():
    """The smaller steps retried on a disagreement cannot make a wrong gradient pass."""
    from dataclasses import replace as replaced

    d = derive(Network(4, [Attention(3), LayerNorm(), Dense(2)], batch=3))
    assert check_gradients(d, seed=2).ok  # needs the step 1e-4: Richardson's error at 1e-3 is 2e-6
    wrong = replaced(d, gradients={**d.gradients, "WK1": 1.001 * d.gradients["WK1"]})
    result = check_gradients(wrong, seed=2)
    assert not result.ok and [c.name for c in result.parameters if c.relative_error >= 1e-6] == ["WK1"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_step_inplace_of_the_layer_kinds_allocates_no_array_per_step(layout):
    import tracemalloc

    # 256 tokens of width 64: each z, a or δ holds 128 KiB, the attention scores 512 KiB
    net = Network(64, [LayerNorm(), Attention(32, causal=True, skip_from=0), Dropout(0.25), BatchNorm(),
                       Dense(64, "relu"), Dense(10, "softmax")], cost="softmax_cross_entropy", batch=256,
                  layout=layout, reduction="mean")
    d = derive(net)
    f = d.numpy()
    values = random_values(d.program, seed=2, sizes={})
    params = {p.name: values[p.name] for p in d.program.trained}
    masks = {i.name: values[i.name] for i in d.program.inputs if i.kind == "mask"}
    X, Y = values["X"], values["Y"]
    expected = f.step(params, X, Y, 0.1, **masks)
    f.step_inplace({k: v.copy() for k, v in params.items()}, X, Y, 0.1, **masks)  # the workspace
    kept = dict(params)
    peaks = {}
    for name, call in (("step", lambda: f.step(params, X, Y, 0.1, **masks)),
                       ("step_inplace", lambda: f.step_inplace(params, X, Y, 0.1, **masks))):
        tracemalloc.start()
        try:
            call()
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert all(params[k] is kept[k] for k in params)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-10, atol=1e-13, err_msg=k)
    # what is traced is NumPy's 64 KiB iteration buffer of a broadcast (γ ⊙ x̂, a softmax's sums) and a few
    # scalars: no z, a, δ, statistic or score array; the plain step allocates every one of them
    assert peaks["step_inplace"] < 128 * 1024 < 16 * 128 * 1024 < peaks["step"], peaks

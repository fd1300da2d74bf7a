"""The layer library in the PyTorch, JAX and Octave targets: every kind, both layouts, both reductions.

For each kind of tests/test_layers.py (layer norm, batch norm, attention, causal attention, embedding,
dropout, symbolic sizes) in the columns and rows layouts, with the sum and the mean reduction, in float64:
the PyTorch gradients equal ``torch.autograd`` of the generated cost and the NumPy module's, and
``CostFunction`` passes ``gradcheck``; the JAX gradients equal ``jax.grad`` of the generated cost, the
custom VJP's and the NumPy module's, under ``jit`` too; the Octave gradients (one ``octave-cli`` process for
every case) equal the NumPy module's to 1e-10.  Dropout masks are given (training) and left out
(evaluation mode); an embedding's X is given one-hot and as word ids.  Bad masks and ids are clear errors
in every target.  A missing engine skips its tests locally and fails them in CI.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from symbackprop import Dense, Network, derive
from symbackprop.checking.gradients import random_values
from symbackprop.errors import SymbackpropError
from symbackprop.model.layers import Attention, BatchNorm, Dropout, Embedding, LayerNorm
from symbackprop.outputs import targets
from test_layers import CASES, _nets
from test_octave import literal, octave, run  # noqa: F401 - octave is a fixture
from test_targets import engine

SIZES = {"m": 4, "n": 3, "d_k": 2, "v": 5}
CLOSE = dict(rtol=1e-10, atol=1e-12)
#: an embedding with a dropout mask and a causal attention block: ids and masks together
MIXED = {layout: Network(5, [Embedding(5, 4), Dropout(0.25), Attention(2, causal=True, skip_from=2), Dense(2)],
                         batch="m", layout=layout, reduction="mean") for layout in ("columns", "rows")}
#: a vocabulary given as a name: code reads it from E, since word ids have no vocabulary axis
VOCAB = {layout: Network("v", [Embedding("v", 3), Dense(2)], batch="m", layout=layout) for layout in ("columns", "rows")}


def case(layout, reduction, kind):
    """The derivation, its NumPy functions, the parameters, the data and the masks (float64 NumPy arrays)."""
    net = MIXED[layout] if kind == "mixed" else VOCAB[layout] if kind == "symbolic vocab" else \
        _nets(layout, reduction)[kind]
    d = derive(net)
    values = random_values(d.program, seed=5, sizes=SIZES)
    params = {p.name: np.asarray(values[p.name]) for p in d.program.trained}
    masks = {i.name: np.asarray(values[i.name]) for i in d.program.inputs if i.kind == "mask"}
    return d, d.numpy(), params, values, masks


def inputs(d, values):
    """X as the arrays code takes: one-hot, and for an embedding the same samples as 0-based word ids."""
    X = np.asarray(values["X"])
    if not any(i.kind == "one_hot" for i in d.program.inputs):
        return [X]
    return [X, np.argmax(X, axis=0 if d.program.layout == "columns" else 1)]


ALL = [*CASES, ("columns", "mean", "mixed"), ("rows", "mean", "mixed"), ("columns", "sum", "symbolic vocab"),
       ("rows", "sum", "symbolic vocab")]
ALL_IDS = ["-".join(c) for c in ALL]


@pytest.mark.parametrize("layout, reduction, kind", ALL, ids=ALL_IDS)
def test_torch_gradients_equal_autograd_gradcheck_and_the_numpy_module(layout, reduction, kind):
    torch = engine("torch")
    d, n, params, values, masks = case(layout, reduction, kind)
    f = targets.compile(d, "torch")
    Y = torch.tensor(values["Y"])
    for X in inputs(d, values):
        for given in ([masks, {}] if masks else [{}]):  # training (masks given) and evaluation mode
            tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
            keywords = {k: torch.tensor(v) for k, v in given.items()}
            expected = n.gradients(params, X, values["Y"], **given)
            derived = f.gradients(tensors, torch.tensor(X), Y, **keywords)
            auto = torch.autograd.grad(f.cost(tensors, torch.tensor(X), Y, **keywords), list(tensors.values()))
            for (name, gradient), other in zip(derived.items(), auto):
                np.testing.assert_allclose(gradient.detach().numpy(), expected[name], **CLOSE, err_msg=name)
                np.testing.assert_allclose(other.numpy(), expected[name], **CLOSE, err_msg=name)
            np.testing.assert_allclose(f.forward(tensors, torch.tensor(X), **keywords).detach().numpy(),
                                       n.forward(params, X, **given), **CLOSE)
            f.step(tensors, torch.tensor(X), Y, 0.05, **keywords)
            for name, new in n.step(params, X, values["Y"], 0.05, **given).items():
                np.testing.assert_allclose(tensors[name].detach().numpy(), new, **CLOSE, err_msg=name)
    tensors = [torch.tensor(v, requires_grad=True) for v in params.values()]
    X = torch.tensor(inputs(d, values)[-1])
    hyper = {k: torch.tensor(v) for k, v in masks.items()}
    assert torch.autograd.gradcheck(lambda *t: f.CostFunction.apply(X, Y, hyper, *t), tensors)


@pytest.mark.parametrize("layout, reduction, kind", ALL, ids=ALL_IDS)
def test_jax_gradients_equal_jax_grad_the_custom_vjp_and_the_numpy_module(layout, reduction, kind):
    jax = engine("jax")
    d, n, params, values, masks = case(layout, reduction, kind)
    g = targets.compile(d, "jax")
    arrays = {k: jax.numpy.asarray(v) for k, v in params.items()}
    for X in inputs(d, values):
        for given in ([masks, {}] if masks else [{}]):
            expected = n.gradients(params, X, values["Y"], **given)
            derived = g.gradients(arrays, X, values["Y"], **given)
            auto = jax.jit(jax.grad(g.cost))(arrays, X, values["Y"], **given)  # one compile, not one per operation
            custom = jax.grad(g.cost_vjp)(arrays, X, values["Y"], *given.values())
            for name in expected:
                for got in (derived, auto, custom):
                    np.testing.assert_allclose(got[name], expected[name], **CLOSE, err_msg=name)
    if kind not in ("mixed", "symbolic sizes"):  # these two hold every helper; compiling each case is slow
        return
    X, given = inputs(d, values)[-1], masks
    jitted = jax.jit(g.step)(arrays, X, values["Y"], 0.05, **given)
    for name, new in n.step(params, X, values["Y"], 0.05, **given).items():
        np.testing.assert_allclose(jitted[name], new, **CLOSE, err_msg=name)


def test_octave_gradients_equal_the_numpy_module_for_every_kind(octave, tmp_path):
    script, expected = [], []
    for k, (layout, reduction, kind) in enumerate(ALL):
        d, n, params, values, masks = case(layout, reduction, kind)
        (tmp_path / f"net{k}.m").write_text(d.code("octave"), encoding="utf-8")
        script.append(f'source("net{k}.m");')
        script.append("params = struct(" + ", ".join(f'"{p}", {literal(v)}' for p, v in params.items()) + ");")
        script.append(f"Y = {literal(values['Y'])};")
        script += [f"{name} = {literal(mask)};" for name, mask in masks.items()]
        for X in inputs(d, values):
            # Octave's word ids count from 1: a row of ids (columns layout) or a column (rows layout)
            octave_X = literal(X) if X.ndim == 2 else literal(X + 1 if layout == "columns" else (X + 1)[:, None])
            script.append(f"X = {octave_X};")
            for given in ([masks, {}] if masks else [{}]):
                tail = "".join(f", {name}" for name in given)
                expected.append([n.cost(params, X, values["Y"], **given),
                                 *n.gradients(params, X, values["Y"], **given).values(),
                                 *n.step(params, X, values["Y"], 0.05, **given).values()])
                script.append(f'printf("%.17g\\n", cost(params, X, Y{tail})); G = gradients(params, X, Y{tail});')
                script += [f'printf("%.17g ", G.{p}); printf("\\n");' for p in params]
                script.append(f"S = step(params, X, Y, 0.05{tail});")
                script += [f'printf("%.17g ", S.{p}); printf("\\n");' for p in params]
    lines = run(octave, tmp_path, "\n".join(script) + "\n").strip("\n").split("\n")
    for k, numbers in enumerate(expected):
        got, lines = lines[:len(numbers)], lines[len(numbers):]
        for value, text in zip(numbers, got):
            np.testing.assert_allclose(np.array(text.split(), dtype=float), np.asarray(value).ravel(order="F"),
                                       **CLOSE, err_msg=str(k))
    assert lines == []


@pytest.mark.parametrize("target", ["torch", "jax"])
def test_normalisation_and_causal_attention_keep_float32_and_stay_finite_for_huge_logits(target):
    module = engine(target)
    d = derive(Network(4, [LayerNorm(), Attention(2, causal=True), BatchNorm(), Dense(2)], batch=5, layout="rows"))
    values = random_values(d.program, seed=0)
    params = {p.name: np.asarray(values[p.name], dtype=np.float32) for p in d.program.trained}
    params["WQ2"] *= 1e3  # logits of about 1e6
    X, Y = np.asarray(values["X"], np.float32) * 1e3, np.asarray(values["Y"], np.float32)
    f = targets.compile(d, target)
    if target == "torch":
        tensors = {k: module.tensor(v, requires_grad=True) for k, v in params.items()}
        derived = f.gradients(tensors, module.tensor(X), module.tensor(Y))
        auto = dict(zip(params, module.autograd.grad(f.cost(tensors, module.tensor(X), module.tensor(Y)),
                                                     list(tensors.values()))))
        derived = {k: v.detach().numpy() for k, v in derived.items()}
        auto = {k: v.numpy() for k, v in auto.items()}
    else:
        derived, auto = f.gradients(params, X, Y), module.jit(module.grad(f.cost))(params, X, Y)
    for name in params:
        for got in (derived, auto):
            assert str(got[name].dtype) == "float32" and np.all(np.isfinite(got[name])), name


# --- bad masks and ids ----------------------------------------------------------------------------

BAD = Network(5, [Embedding(5, 3), Dropout(0.25), Dense(2)], batch=4)


def _bad_cases(values):
    ids = np.array([0, 4, 4, 1])
    return [
        (dict(X=ids, M2=values["M2"][:, :2]), "M2: expected a dropout mask of shape (3, 4), given shape (3, 2)"),
        (dict(X=ids, M2=values["M2"] * 2), "M2: a dropout mask holds only 0 (dropped) and 1 (kept)"),
        (dict(X=ids + 1), "X: word ids must be from 0 to 4 (the vocabulary has 5 words); given ids from 1 to 5"),
        (dict(X=ids - 1), "X: word ids must be from 0 to 4 (the vocabulary has 5 words); given ids from -1 to 3"),
        (dict(X=ids * 0.5), "X: the embedding takes one-hot samples or a 1-d"),
        (dict(X=values["X"] * 3), "X: the embedding takes one-hot samples (each column a single 1"),
        (dict(X=np.array([0, 1, 2])), "X: expected shape (4)"),
    ]


@pytest.mark.parametrize("target", ["torch", "jax"])
def test_bad_masks_and_ids_are_clear_errors_in_torch_and_jax(target):
    module = engine(target)
    d = derive(BAD)
    f = targets.compile(d, target)
    values = random_values(d.program, seed=0)
    array = module.tensor if target == "torch" else module.numpy.asarray
    params = {p.name: array(np.asarray(values[p.name])) for p in d.program.trained}
    for arguments, message in _bad_cases(values):
        arguments = {k: array(v) for k, v in arguments.items()}
        for function in (f.gradients, f.cost, f.cost_and_gradients):
            with pytest.raises(SymbackpropError, match=re.escape(message)):
                function(params, Y=array(values["Y"]), **arguments)


def test_bad_masks_and_ids_are_clear_errors_in_octave(octave, tmp_path):
    d = derive(BAD)
    (tmp_path / "net.m").write_text(d.code("octave"), encoding="utf-8")
    values = random_values(d.program, seed=0)
    params = "params = struct(" + ", ".join(f'"{p.name}", {literal(values[p.name])}' for p in d.program.trained) + ");"
    ids = np.array([[1, 5, 5, 2]])
    cases = [
        (f"{literal(ids)}, Y, {literal(values['M2'][:, :2])}", "M2: expected a dropout mask of shape (3, 4), given (3, 2)"),
        (f"{literal(ids)}, Y, 2 * {literal(values['M2'])}", "M2: a dropout mask holds only 0 (dropped) and 1 (kept)"),
        (f"{literal(ids + 1)}, Y", "X: word ids must be whole numbers from 1 to 5 (the vocabulary has 5 words; "
                                   "Octave counts from 1); given ids from 2 to 6"),
        (f"{literal(ids - 1)}, Y", "given ids from 0 to 4"),
        (f"{literal(ids * 0.5)}, Y", "X: word ids must be whole numbers from 1 to 5"),
        (f"3 * {literal(values['X'])}, Y", "X: the embedding takes one-hot samples (each column a single 1"),
        (f"{literal(ids.T)}, Y", "X: expected one-hot samples of shape (5, 4) or word ids of shape (1, 4), given (4, 1)"),
    ]
    batch_norm = derive(Network(3, [BatchNorm(), Dense(2)], batch="m"))
    (tmp_path / "bn.m").write_text(batch_norm.code("octave"), encoding="utf-8")
    done = subprocess.run(["octave-cli", "--no-gui", "--quiet", "--norc", "--eval",
                           'source("bn.m"); cost(struct("gamma1", ones(3, 1), "beta1", zeros(3, 1), "W2", ones(2, 3), '
                           '"b2", zeros(2, 1)), ones(3, 1), ones(2, 1))'], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert "a normalisation over m = 1 entries makes every x̂ 0" in done.stderr, done.stderr
    for arguments, message in cases:
        done = subprocess.run(["octave-cli", "--no-gui", "--quiet", "--norc", "--eval",
                               f'source("net.m"); {params} Y = {literal(values["Y"])}; gradients(params, {arguments})'],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert message in done.stderr, (message, done.stderr)


@pytest.mark.parametrize("target", ["torch", "jax", "octave"])
def test_every_target_writes_the_new_layers_byte_identically(target):
    for net in MIXED.values():
        assert derive(net).code(target) == derive(net).code(target)


def _given_model():
    from symbackprop.model.equations import Model

    model = Model(inputs={"X": [3, "m"], "Y": [3, "m"], "M": [3, "m"]}, parameters={"W": [3, 3]},
                  forward=["h = M .* (W @ X)", "C = sum((h - Y)^2)"])
    d = derive(model)
    values = random_values(d.program, seed=0, sizes={"m": 2})
    return d, values, d.numpy().gradients({"W": values["W"]}, values["X"], values["Y"], M=values["M"])["W"]


@pytest.mark.parametrize("target", ["torch", "jax"])
def test_another_given_matrix_of_a_written_model_is_a_required_keyword_in_torch_and_jax(target):
    module = engine(target)
    d, values, expected = _given_model()
    f = targets.compile(d, target)
    array = module.tensor if target == "torch" else module.numpy.asarray
    params = {"W": array(values["W"])}
    data = [array(values[name]) for name in ("X", "Y")]
    np.testing.assert_allclose(np.asarray(f.gradients(params, *data, M=array(values["M"]))["W"]), expected, **CLOSE)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'M'"):
        f.gradients(params, *data)
    with pytest.raises(SymbackpropError, match=re.escape("M: expected shape (3, 2), given shape (2, 2)")):
        f.gradients(params, *data, M=array(np.ones((2, 2))))


def test_another_given_matrix_of_a_written_model_is_a_required_argument_in_octave(octave, tmp_path):
    d, values, expected = _given_model()
    (tmp_path / "net.m").write_text(d.code("octave"), encoding="utf-8")
    out = run(octave, tmp_path, f'source("net.m"); G = gradients(struct("W", {literal(values["W"])}), '
                                f'{literal(values["X"])}, {literal(values["Y"])}, {literal(values["M"])}); '
                                f'printf("%.17g ", G.W);\n')
    np.testing.assert_allclose(np.array(out.split(), dtype=float), expected.ravel(order="F"), **CLOSE)

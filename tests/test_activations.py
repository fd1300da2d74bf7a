"""The activation and cost registries: derived derivatives, textbook identities, stable NumPy forms."""

import warnings

import numpy as np
import pytest
import sympy

from symbackprop.calculus import inplace, runtime
from symbackprop.outputs.fused import HELPERS
from symbackprop.model.activations import ACTIVATIONS, MATH_FUNCTIONS, custom_activation, get_activation, y
from symbackprop.errors import SpecError, UnknownNameError
from symbackprop.calculus.expressions import SCALAR_VARIABLE as x

ELEMENTWISE = [a for a in (*ACTIVATIONS.values(), *MATH_FUNCTIONS.values()) if a.is_elementwise]
POINTS = np.array([-3.1, -1.0, -0.2, 0.3, 1.0, 2.7])


@pytest.mark.parametrize("activation", [a for a in ELEMENTWISE if a.output_derivative is not None], ids=lambda a: a.name)
def test_output_derivative_identity_equals_the_derived_derivative(activation):
    assert activation.output_derivative.is_polynomial(y)  # so it can be written with Hadamard products
    through_output = activation.output_derivative.subs(y, activation.definition)
    assert sympy.simplify(through_output - activation.derivative) == 0


@pytest.mark.parametrize("activation", ELEMENTWISE, ids=lambda a: a.name)
def test_runtime_function_and_derivative_equal_the_sympy_definition(activation):
    points = POINTS if activation.name not in ("log", "sqrt") else np.abs(POINTS)
    exact = sympy.lambdify(x, activation.definition, "numpy")
    derivative = sympy.lambdify(x, activation.derivative, "numpy")
    f = getattr(runtime, activation.runtime)
    f_prime = getattr(runtime, activation.runtime + "_grad")
    np.testing.assert_allclose(f(points), np.broadcast_to(exact(points), points.shape), rtol=1e-12)
    np.testing.assert_allclose(f_prime(points), np.broadcast_to(derivative(points), points.shape), rtol=1e-12)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_runtime_functions_are_stable_and_keep_the_dtype(name, dtype):
    z = np.array([-1e3, -50.0, 0.0, 50.0, 1e3], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in (getattr(runtime, name), getattr(runtime, name + "_grad")):
            out = f(z)
            assert out.dtype == dtype
            assert np.all(np.isfinite(out))


@pytest.mark.parametrize("runtime_name, order", sorted(HELPERS), ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("over_input", [False, True], ids=["into another array", "over its input"])
def test_in_place_helpers_equal_their_runtime_twins_stably_and_allocate_nothing(runtime_name, order, dtype,
                                                                                  over_input):
    import tracemalloc

    helper, scratch = HELPERS[runtime_name, order]
    twin = getattr(runtime, runtime_name if order == 0 else runtime_name + "_grad")
    z = np.concatenate([[-1e3, -50.0, -40.0, 0.0, 40.0, 50.0, 1e3], np.linspace(-6, 6, 4000)]).astype(dtype)
    z = z.reshape(-1, 1)
    out = z.copy() if over_input else np.empty_like(z)
    extra = [np.empty_like(z) for _ in scratch]
    function = getattr(inplace, helper)
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        function(out if over_input else z, out, *extra)
        expected = twin(z)
    assert out.dtype == dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-13
    # relative, even where tiny; σ(−1e3) is the smallest normal number, not 0
    np.testing.assert_allclose(out, expected, rtol=tolerance, atol=2 * np.finfo(dtype).tiny)
    tracemalloc.start()
    try:
        function(z, out, *extra)
        assert tracemalloc.get_traced_memory()[1] < 2048  # NumPy's scalar objects; z holds 32 kB or 16 kB
    finally:
        tracemalloc.stop()


def test_in_place_softmax_equals_softmax_and_writes_over_its_input():
    z = np.array([[1e3, -1e3, 0.5], [0.0, 1e3, -0.5], [-1e3, 0.0, 2.0]])
    expected = runtime.softmax(z, axis=0)
    out, sums = z.copy(), np.empty((1, 3))
    inplace.softmax_into(out, out, sums, 0)
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    rows = z.T.copy()
    inplace.softmax_into(rows, rows, np.empty((3, 1)), 1)
    np.testing.assert_allclose(rows, expected.T, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_causal_softmax_equals_the_runtimes_along_either_axis_and_allocates_nothing(dtype):
    import tracemalloc

    rng = np.random.default_rng(3)
    z = (rng.normal(size=(7, 7)) * np.array([1.0, 30.0, 1e3, 1.0, 5.0, 1.0, 80.0])).astype(dtype)
    for axis in (0, 1):
        later = np.triu(np.ones((7, 7), dtype=bool), 1)
        later = later if axis == 1 else np.ascontiguousarray(later.T)
        out = np.empty_like(z)
        sums = np.empty((1, 7) if axis == 0 else (7, 1), dtype)
        inplace.causal_softmax_into(z, out, sums, axis, later)
        expected = runtime.causal_softmax(z, axis)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-14, atol=0)
        assert np.all(out[later] == 0)  # exactly 0 after the diagonal, not merely small
        over = z.copy()
        inplace.causal_softmax_into(over, over, sums, axis, later)  # written over its input
        np.testing.assert_array_equal(over, out)
        tracemalloc.start()
        try:
            inplace.causal_softmax_into(z, out, sums, axis, later)
            assert tracemalloc.get_traced_memory()[1] < 2048
        finally:
            tracemalloc.stop()


def test_softmax_and_log_softmax_are_stable():
    z = np.array([[1e3, -1e3], [0.0, 1e3], [-1e3, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = runtime.softmax(z, axis=0)
        np.testing.assert_allclose(s.sum(axis=0), 1.0)
        np.testing.assert_allclose(runtime.log_softmax(z, axis=0)[0, 0], 0.0)


def test_relu_derivative_is_zero_at_zero_and_leaky_relu_slope_is_one_hundredth():
    relu, leaky = ACTIVATIONS["relu"], ACTIVATIONS["leaky_relu"]
    assert relu.derivative.subs(x, 0) == 0
    assert relu.derivative.subs(x, 2) == 1
    assert leaky.derivative.subs(x, -3) == sympy.Rational(1, 100)
    assert runtime.relu_grad(np.array([0.0]))[0] == 0.0


@pytest.mark.parametrize(
    "formula, definition, derivative",
    [
        ("x**3", x**3, 3 * x**2),
        ("log(1 + exp(x))", sympy.log(1 + sympy.exp(x)), sympy.exp(x) / (1 + sympy.exp(x))),
        ("x^2/2", x**2 / 2, x),
        ("2x + 1", 2 * x + 1, 2),
        ("x * tanh(x)", x * sympy.tanh(x), x * (1 - sympy.tanh(x) ** 2) + sympy.tanh(x)),
    ],
)
def test_custom_activation_parses_a_formula_in_x_and_derives_its_derivative(formula, definition, derivative):
    activation = get_activation(formula)
    assert sympy.simplify(activation.definition - definition) == 0
    assert sympy.simplify(activation.derivative - derivative) == 0
    assert activation.formula == formula


@pytest.mark.parametrize(
    "formula, message",
    [
        ("x + y", "unknown name 'y'"),
        ("9**9**9**9", "exponent must be a number"),
        ("__import__('os').system('true')", "must not start with '_'"),
        ("x @ x", "not matmul"),
        ("exp(x", "expected ')'"),
        ("W1 * x", "unknown name 'W1'"),
    ],
)
def test_custom_activation_that_is_not_a_formula_of_x_alone_is_refused(formula, message):
    with pytest.raises(SpecError, match="custom activation") as info:
        get_activation(formula)
    assert message in str(info.value)


def test_unknown_activation_name_lists_the_known_names():
    with pytest.raises(UnknownNameError) as info:
        get_activation("sigmod")
    message = str(info.value)
    for name in ACTIVATIONS:
        assert name in message


def test_custom_activation_name_must_be_an_identifier_not_a_builtin():
    with pytest.raises(SpecError):
        custom_activation("x**2", name="sigmoid")
    with pytest.raises(SpecError):
        custom_activation("x**2", name="not a name")

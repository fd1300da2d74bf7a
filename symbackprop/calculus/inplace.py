"""The activations of :mod:`.runtime` written into a given array, with no array allocated.

The generated ``step_inplace`` keeps every ``z``, ``a`` and ``δ`` in a buffer
of its workspace; these helpers fill such a buffer.  ``out`` may be ``x``
itself (a = σ(z) written over z); ``t`` is a scratch array shaped like ``x``,
``r`` a row or column for a softmax's reductions.  They
are as stable as the :mod:`.runtime` forms (no exponent is positive) and keep
the input's dtype; ``tests/test_activations.py`` holds each to its runtime twin.
"""

import numpy as np


def sigmoid_into(x, out):
    # 1/(1 + e^{−x}) with −x held below the exponent where e^{−x} would overflow: σ(x) there is
    # below 1e−300 (1e−37 in float32) either way, and no warning is raised
    np.negative(x, out=out)
    np.minimum(out, 87.0 if out.dtype == np.float32 else 708.0, out=out)
    np.exp(out, out=out)
    np.add(out, 1, out=out)
    np.reciprocal(out, out=out)


def sigmoid_grad_into(x, out, t):
    # σ'(x) = σ(−|x|) (1 − σ(−|x|)): the small factor is computed directly, so a tiny σ' keeps its digits
    np.abs(x, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.add(out, 1, out=t)
    np.divide(out, t, out=out)
    np.subtract(1, out, out=t)
    np.multiply(out, t, out=out)


def tanh_grad_into(x, out):
    np.tanh(x, out=out)
    np.multiply(out, out, out=out)
    np.subtract(1, out, out=out)


def relu_into(x, out):
    np.maximum(x, 0, out=out)


def relu_grad_into(x, out):
    np.heaviside(x, 0, out=out)  # 1 where x > 0, else 0, with no boolean array cast to floats


def leaky_relu_into(x, out, t):
    np.multiply(x, 0.01, out=t)
    np.maximum(x, t, out=out)


def leaky_relu_grad_into(x, out):
    np.heaviside(x, 0, out=out)
    np.multiply(out, 0.99, out=out)
    np.add(out, 0.01, out=out)


def softplus_into(x, out, t):
    # log(1 + e^x) = max(x, 0) + log1p(e^{-|x|})
    np.abs(x, out=t)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    np.maximum(x, 0, out=out)
    np.add(out, t, out=out)


def softmax_into(x, out, r, axis):
    np.max(x, axis=axis, keepdims=True, out=r)
    np.subtract(x, r, out=out)
    np.exp(out, out=out)
    np.sum(out, axis=axis, keepdims=True, out=r)
    np.divide(out, r, out=out)


def causal_softmax_into(x, out, r, axis, later):
    # the runtime's causal softmax: the entries ``later`` marks (after the diagonal) get weight exactly 0
    np.copyto(out, x)
    np.copyto(out, -np.inf, where=later)
    softmax_into(out, out, r, axis)

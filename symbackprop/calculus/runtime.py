"""NumPy implementations of the activations, their derivatives and the costs' pieces.

These are the numeric forms of the registry entries in
:mod:`symbackprop.model.activations`.  They are numerically stable (no overflow and no
warning for ``|z|`` up to 1e3) and keep the input's floating dtype.  The
evaluator uses them directly, and the code generator copies the source of the
ones a network needs into the standalone module, which therefore imports only
NumPy.  Each function is tested against the SymPy definition it implements.
"""

import numpy as np


def identity(x):
    return x


def identity_grad(x):
    return np.ones_like(x)


def sigmoid(x):
    # e^min(x,0) / (e^min(x,0) + e^min(-x,0)): no exponent is positive, so
    # nothing overflows, and with no branch (np.where) it runs about twice as fast
    p = np.minimum(x, 0)
    np.exp(p, out=p)
    q = np.maximum(x, 0)
    np.negative(q, out=q)
    np.exp(q, out=q)
    q += p
    np.divide(p, q, out=p)
    return p


def sigmoid_grad(x):
    e = np.exp(-np.abs(x))
    return e / ((1 + e) * (1 + e))


def tanh(x):
    return np.tanh(x)


def tanh_grad(x):
    t = np.tanh(x)
    return 1 - t * t


def relu(x):
    return np.maximum(x, 0)


def relu_grad(x):
    return (x > 0).astype(x.dtype)


def leaky_relu(x):
    return np.where(x > 0, x, x * np.asarray(0.01, dtype=x.dtype))


def leaky_relu_grad(x):
    return np.where(x > 0, np.asarray(1, dtype=x.dtype), np.asarray(0.01, dtype=x.dtype))


def softplus(x):
    # log(1 + e^x) = max(x, 0) + log1p(e^{-|x|})
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def softplus_grad(x):
    return sigmoid(x)


def softmax(x, axis):
    # one new array: shifted, exponentiated and normalised in place
    e = x - np.max(x, axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def causal_softmax(x, axis):
    # a token attends to itself and the tokens before it: the others' logits are -inf, so their
    # weights are exactly 0; the diagonal is never masked, so every maximum is finite
    later = np.triu(np.ones(x.shape, dtype=bool), 1)
    shifted = np.where(later.T if axis == 0 else later, -np.inf, x)
    shifted -= np.max(shifted, axis=axis, keepdims=True)
    e = np.exp(shifted, out=shifted)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def deviation(x, mu, axis, eps):
    # the biased deviation sqrt(mean((x - mu)^2) + eps), in x's dtype
    d = x - mu
    d *= d
    v = np.mean(d, axis=axis, keepdims=True)
    v += eps
    return np.sqrt(v, out=v)


def log_softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def log(x):
    return np.log(x)


def log_grad(x):
    return 1 / x


def sqrt(x):
    return np.sqrt(x)


def sqrt_grad(x):
    return 0.5 / np.sqrt(x)


def exp(x):
    return np.exp(x)


def exp_grad(x):
    return np.exp(x)


def embed(E, X, axis):
    # a one-hot X multiplies; integer ids gather the columns (axis 1: the rows) of E instead
    if X.ndim == 1:
        return E[:, X] if axis == 0 else E[X]
    return E @ X if axis == 0 else X @ E


def embed_grad(G, X, axis, vocab):
    # dC/dE = G X^T (axis 1: X^T G); for integer ids a scatter-add, repeated ids accumulating
    if X.ndim == 1:
        if axis == 0:
            out = np.zeros((G.shape[0], vocab), dtype=G.dtype)
            np.add.at(out.T, X, G.T)
        else:
            out = np.zeros((vocab, G.shape[1]), dtype=G.dtype)
            np.add.at(out, X, G)
        return out
    return G @ X.T if axis == 0 else X.T @ G

"""Textbook forms: the rewrites that take a derived adjoint to the form a textbook prints, in one place.

The chain rule gives correct but literal results; a textbook writes
``δᴸ = aᴸ − y`` for softmax or sigmoid outputs with a cross-entropy, and
``σ'(z) = σ(z)(1 − σ(z))`` through the stored activation.  Each rewrite here is
keyed by a pattern of the program (a definition that applies an activation
with a known output form, a softmax output whose targets are distributions),
offers a candidate, and the shortest candidate wins; the first of equals is
the plain product form.  Step labels are named here too.
"""

from __future__ import annotations

from typing import Sequence

import sympy
from sympy import Basic, Expr, HadamardProduct, MatMul, MatrixSymbol, OneMatrix

from .calculus.expressions import Elementwise, Named, Softmax, hadamard
from .calculus.simplify import _Atoms, _from_scalar, tidy
from .calculus.trees import mentions, substitute, walk
from .model.activations import Activation, y
from .model.costs import distribution_assumption
from .model.program import Definition, Program

__all__ = ["compact", "label", "size_of", "WEIGHT_DECAY"]

#: the rules that differentiate λ Σ(W^∘2): a step that applies only them is "weight decay"
WEIGHT_DECAY = ("scalar product", "sum of entries", "Hadamard power")


def label(paths: Sequence[Sequence[str]], parameter: bool) -> str:
    """A step's label: the rules each contribution applied, a leading split of a sum left unsaid.

    >>> label([("sum", "matrix product"), ("sum", "scalar product", "sum of entries", "Hadamard power")], True)
    'matrix product, weight decay'
    """
    labels = []
    for path in paths:
        rules = tuple(path[1:] if len(path) > 1 and path[0] == "sum" else path)
        if parameter and tuple(r for r in rules if r != "sum") == WEIGHT_DECAY:
            labels.append("weight decay")
        else:
            labels.append(", ".join(rules))
    return ", ".join(dict.fromkeys(labels))


def size_of(expr: Basic) -> int:
    """How many nodes an expression has, not counting inside names: the shorter form wins."""
    count, stack = 0, [expr]
    while stack:
        node = stack.pop()
        count += 1
        if not isinstance(node, (Named, MatrixSymbol, sympy.Lambda)):
            stack.extend(node.args)
    return count


def output_form(activation: Activation, output: Named) -> Expr:
    """σ'(z) written through the layer's output a = σ(z), e.g. a ⊙ (1 − a) for the sigmoid."""
    atoms = _Atoms()
    atoms.symbol_of[output] = y
    atoms.matrix_of[y] = output
    return _from_scalar(activation.output_derivative, atoms, output.shape)


def assume_distributions(expr: Expr, Y: MatrixSymbol, columns: bool) -> Expr:
    """Use 1ᵀY = 1ᵀ (columns) or Y1 = 1 (rows): each sample's targets sum to one."""
    rows, cols = Y.shape
    replacement = {}
    for node in walk(expr):
        if not isinstance(node, sympy.MatMul):
            continue
        matrices = [a for a in node.args if a.is_Matrix]
        if len(matrices) != 2:
            continue
        scale = sympy.Mul(*(a for a in node.args if not a.is_Matrix))  # 1/m with the mean reduction
        first, second = matrices
        if columns and second == Y and isinstance(first, OneMatrix):
            replacement[node] = scale * OneMatrix(first.shape[0], cols)
        elif not columns and first == Y and isinstance(second, OneMatrix):
            replacement[node] = scale * OneMatrix(rows, second.shape[1])
    return tidy(substitute(expr, replacement)) if replacement else expr


def attention_scores(program: Program, definition: Definition, readers: Sequence[Definition],
                     concrete: Expr) -> Expr | None:
    """dS = P ⊙ (dP − rowsum(dO ⊙ O) 1ᵀ) for attention scores S (Dao et al. 2022, Appendix B).

    When P = softmax(S) is read only by O = P V (columns: O = V P), its adjoint is
    dP = dO Vᵀ and Σⱼ Pᵢⱼ dPᵢⱼ = Σₖ dOᵢₖ Oᵢₖ: the softmax rule's row sums of the
    T×T matrix P ⊙ dP are the row sums of the T×d_k matrix dO ⊙ O, which is the
    published form and the cheaper one.  None when the pattern is not there.
    """
    for reader in readers:
        softmax = reader.expr
        if not (isinstance(softmax, Softmax) and softmax.arg == definition.node):
            continue
        P = reader.node
        users = program.readers().get(P.name, [])
        if len(users) != 1 or not isinstance(users[0].expr, MatMul) or len(users[0].expr.args) != 2 \
                or P not in users[0].expr.args:
            continue
        O = users[0]
        rows = O.expr.args[0] == P  # O = P V, else O = V P
        V = O.expr.args[1] if rows else O.expr.args[0]
        replacement = {}
        for node in walk(concrete):
            if not isinstance(node, MatMul):
                continue
            matrices = [a for a in node.args if a.is_Matrix]
            if len(matrices) != 2:
                continue
            weighted, ones = (matrices[0], matrices[1]) if rows else (matrices[1], matrices[0])
            if not (isinstance(ones, OneMatrix) and isinstance(weighted, HadamardProduct)
                    and len(weighted.args) == 2 and P in weighted.args):
                continue
            dP = weighted.args[1] if weighted.args[0] == P else weighted.args[0]
            if not isinstance(dP, Named) or not isinstance(dP.definition, MatMul) or len(dP.definition.args) != 2:
                continue
            first, second = dP.definition.args
            if rows and second == V.T:
                dO = first
            elif not rows and first == V.T:
                dO = second
            else:
                continue
            scale = sympy.Mul(*(a for a in node.args if not a.is_Matrix))
            d_k = V.shape[1] if rows else V.shape[0]
            T = ones.shape[1] if rows else ones.shape[0]
            sums = hadamard(dO, O.node)
            spread = MatMul(sums, OneMatrix(d_k, T)) if rows else MatMul(OneMatrix(T, d_k), sums)
            replacement[node] = scale * spread if scale != 1 else spread
        if replacement:
            return tidy(substitute(concrete, replacement))
    return None


def compact(program: Program, definition: Definition, readers: Sequence[Definition],
            concrete: Expr) -> tuple[Expr, str | None]:
    """The textbook form of a pre-activation's adjoint (δ), and the assumption it used, if any; for
    attention scores, the published dS."""
    if definition.role != "preactivation":
        published = attention_scores(program, definition, readers, concrete)
        return (concrete if published is None else published), None
    candidates = [concrete]
    assumed = None
    for reader in readers:
        applied = reader.expr
        activation = program.activation_of(applied)
        if activation is not None and applied.arg == definition.node and activation.output_derivative is not None \
                and mentions(concrete, reader.node):
            # σ' written through the output can cancel against ∂C/∂a (sigmoid + cross-entropy)
            derivative = Elementwise(activation.name, activation.function, definition.node, 1)
            candidates.append(tidy(substitute(concrete, {derivative: output_form(activation, reader.node)})))
        if isinstance(applied, Softmax) and applied.arg == definition.node and reader.role == "output" \
                and program.target_kind == "distributions":
            assumed = assume_distributions(candidates[0], program.input("target").symbol, program.layout == "columns")
            if assumed != candidates[0]:
                candidates.append(assumed)
    best = min(candidates, key=size_of)  # min keeps the first of equals: the textbook product form
    note = distribution_assumption(program.layout) if assumed is not None and best is assumed \
        and best is not candidates[0] else None
    return best, note

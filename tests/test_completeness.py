"""A class arrives complete: every class the chain rule knows can be evaluated and printed.

The test walks the rule table ``VJP`` and, for each class, asks for an entry in
the numeric evaluator's table ``EVALUATORS`` and a ``_print_<Class>`` method in
the text, LaTeX and NumPy printers.  A method inherited from SymPy's printers
counts (``_print_Add``, ``_print_Function``), and so does one for a base class
the printer's dispatch reaches through the class's MRO (``_print_MatPow``
prints ``Inverse`` only if no ``_print_Inverse`` exists).
"""

from __future__ import annotations

import pytest

from symbackprop.calculus.expressions import KroneckerAdjoint, UnitMatrix
from symbackprop.calculus.numeric import EVALUATORS
from symbackprop.calculus.rules import VJP
from symbackprop.printing.latex import LatexPrinter
from symbackprop.printing.numpy import NumPyCodePrinter
from symbackprop.printing.text import TextPrinter

PRINTERS = {"text": TextPrinter, "LaTeX": LatexPrinter, "NumPy": NumPyCodePrinter}
#: classes the rules build without a rule of their own (gradients of entries and Kronecker factors)
BUILT_BY_RULES = [UnitMatrix, KroneckerAdjoint]


def _printed_by(printer: type, cls: type) -> str | None:
    """The ``_print_`` method a printer dispatches ``cls`` to, as SymPy's Printer._print does."""
    for base in cls.__mro__:
        method = f"_print_{base.__name__}"
        if hasattr(printer, method):
            return method
        if base.__name__ in ("Basic", "Expr", "MatrixExpr"):
            return None
    return None


def _evaluated_by(cls: type):
    return next((EVALUATORS[base] for base in cls.__mro__ if base in EVALUATORS), None)


CLASSES = sorted({*VJP, *BUILT_BY_RULES}, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_class_with_a_rule_evaluates_numerically(cls):
    assert _evaluated_by(cls) is not None, f"{cls.__name__} has a rule but no entry in numeric.EVALUATORS"


@pytest.mark.parametrize("printer", list(PRINTERS), ids=list(PRINTERS))
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_class_with_a_rule_prints(cls, printer):
    method = _printed_by(PRINTERS[printer], cls)
    assert method is not None, f"{cls.__name__} has a rule but the {printer} printer has no _print_{cls.__name__}"


def test_trace_determinant_and_inverse_have_their_own_numpy_code():
    """np.trace, np.linalg.det, np.linalg.inv: written here, not left to SymPy's printer."""
    for name in ("Trace", "Determinant", "Inverse", "KroneckerProduct", "DiagMatrix", "DiagonalOf", "MatPow"):
        assert name in {c.__name__ for c in CLASSES}
        assert f"_print_{name}" in vars(NumPyCodePrinter), name


def test_the_check_fails_for_a_class_without_printers():
    class Unprintable(UnitMatrix):
        pass

    Unprintable.__name__ = "Unprintable"
    # reached through its base class, so it passes; a class with no printable base would not
    assert _printed_by(TextPrinter, Unprintable) == "_print_UnitMatrix"

    class Bare:
        pass

    assert _printed_by(TextPrinter, Bare) is None
    assert _evaluated_by(Bare) is None

"""symbackprop: backpropagation in matrix form, derived, typeset, coded and checked.

Describe a layered network; symbackprop builds its cost as a SymPy matrix
expression, derives every layer's gradient by a matrix chain rule in the
compact form textbooks print (``δ⁽ˡ⁾ = (W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾) ⊙ σ'(z⁽ˡ⁾)``), and proves
it numerically.

>>> from symbackprop import Dense, Network, derive
>>> d = derive(Network(3, [Dense(4, "sigmoid"), Dense(2, "sigmoid")], cost="binary_cross_entropy"))
>>> d.gradients["W1"]
delta1*X.T
>>> from symbackprop.printing import to_text
>>> to_text(d.deltas["delta2"].definition)
'a⁽²⁾ − Y'
>>> print(d.text().splitlines()[-4])
  ∂C/∂W⁽¹⁾ = δ⁽¹⁾ Xᵀ
"""

from .model.activations import ACTIVATIONS, Activation, custom_activation
from .calculus.autodiff import grad
from .checking.verdicts import CheckResult, check
from .model.costs import COSTS, Cost
from .derive import Derivation, Step, derive
from .errors import (
    FormulaError,
    FormulaSyntaxError,
    MissingRuleError,
    NotationError,
    ShapeError,
    SpecError,
    SymbackpropError,
    TrainingError,
    UnknownNameError,
)
from .calculus.numeric import evaluate
from .checking.gradients import check_gradients, random_values
from .model.equations import Model
from .model.layers import Attention, BatchNorm, Dropout, Embedding, LayerNorm
from .model.network import Dense, Network
from .model.program import Definition, Program
from .spec import load_spec

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "COSTS",
    "Activation",
    "Attention",
    "BatchNorm",
    "CheckResult",
    "Cost",
    "Definition",
    "Dense",
    "Derivation",
    "Dropout",
    "Embedding",
    "FormulaError",
    "FormulaSyntaxError",
    "LayerNorm",
    "MissingRuleError",
    "Model",
    "Network",
    "NotationError",
    "Program",
    "ShapeError",
    "SpecError",
    "Step",
    "SymbackpropError",
    "TrainingError",
    "UnknownNameError",
    "__version__",
    "check",
    "check_gradients",
    "custom_activation",
    "derive",
    "evaluate",
    "grad",
    "load_spec",
    "random_values",
]

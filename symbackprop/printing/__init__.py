r"""Printers: SymPy ``Printer`` subclasses with a ``_print_<Class>`` method per expression class.

* :mod:`.text` — readable Unicode for the terminal (``δ⁽¹⁾ = (W⁽²⁾ᵀ δ⁽²⁾) ⊙ σ'(z⁽¹⁾)``).
* :mod:`.latex` — LaTeX as papers write it (``\delta^{(1)} = (W^{(2)\top} \delta^{(2)}) \odot \sigma'(z^{(1)})``).
"""

from .latex import LatexPrinter, to_latex
from .precedence import precedence
from .text import TextPrinter, to_text

__all__ = ["precedence", "LatexPrinter", "TextPrinter", "to_latex", "to_text"]

"""Printers: SymPy ``Printer`` subclasses with a ``_print_<Class>`` method per expression class.

* :mod:`.text` — readable Unicode for the terminal (``δ⁽¹⁾ = (W⁽²⁾ᵀ δ⁽²⁾) ⊙ σ'(z⁽¹⁾)``).
"""

from .precedence import precedence
from .text import TextPrinter, to_text

__all__ = ["precedence", "TextPrinter", "to_text"]

"""Exception classes of symbackprop.

Every error the library raises on bad input is a :class:`SymbackpropError`, so
callers (and the command line) can catch one base class.  Each message names the
thing at fault: the parameter, the spec file and key, the unknown name together
with the known ones.
"""

from __future__ import annotations

import unicodedata

__all__ = [
    "SymbackpropError",
    "SpecError",
    "UnknownNameError",
    "ShapeError",
    "FormulaSyntaxError",
    "FormulaError",
    "MissingRuleError",
    "NotationError",
    "TrainingError",
    "OutputError",
]


class SymbackpropError(Exception):
    """Base class of every error symbackprop raises on bad input."""


class SpecError(SymbackpropError):
    """A network description (arguments or a spec file) is invalid."""


class UnknownNameError(SpecError, KeyError):
    """A name (activation, cost, parameter, option) is not known.

    The message lists the known names.
    """

    def __init__(self, kind: str, name: object, known: "list[str] | tuple[str, ...]") -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class ShapeError(SymbackpropError, ValueError):
    """An array or expression has the wrong shape."""


class FormulaSyntaxError(SymbackpropError, ValueError):
    """A user's formula could not be parsed.

    ``position`` is the 0-based character offset of the fault; ``str(err)``
    shows the formula with a caret under it.
    """

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        self.message = message
        self.text = text
        self.position = position
        super().__init__(message)

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        located = f"{self.message} (at position {self.position})"
        if not self.text or len(self.text) > 200:
            return located
        # show only a printable one-line copy, so control, bidirectional and
        # unpaired surrogate characters in hostile input never reach a terminal
        shown = "".join(c if _one_column(c) else "?" for c in self.text)
        return f"{located}\n  {shown}\n  {' ' * min(self.position, len(shown))}^"


def _one_column(character: str) -> bool:
    """A printable character a terminal shows in exactly one column."""
    return (
        character.isprintable()
        and not unicodedata.category(character).startswith("M")
        and unicodedata.east_asian_width(character) not in ("W", "F")
    )


class FormulaError(SymbackpropError, ValueError):
    """A formula parsed but does not make sense (unknown name, bad shape, ...)."""


class MissingRuleError(SymbackpropError, NotImplementedError):
    """The chain rule has no vector-Jacobian rule for an expression class."""


class NotationError(SymbackpropError, ValueError):
    """An unknown or invalid notation option for rendering."""


class TrainingError(SymbackpropError, ValueError):
    """Training data or settings are invalid."""


class OutputError(SymbackpropError, OSError):
    """An output file cannot be written."""

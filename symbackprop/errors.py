"""Exception classes of symbackprop.

Every error the library raises on bad input is a :class:`SymbackpropError`, so
callers (and the command line) can catch one base class.  Each message names the
thing at fault: the parameter, the spec file and key, the unknown name together
with the known ones.

An error may carry a ``hint``: a likely fix, raised with it where the library
knows one (``SpecError("...: no such spec file", hint="paths are relative to
the current folder")``).  ``str(err)`` is the message alone; the command line
prints ``error: <message> (hint: <hint>)`` on one line, and a traceback shows
the hint as a note under the message.

>>> err = SpecError("net.toml: no such spec file", hint="paths are relative to the current folder")
>>> str(err), err.hint
('net.toml: no such spec file', 'paths are relative to the current folder')
>>> UnknownNameError("activation", "sigmod", ["relu", "sigmoid", "tanh"]).hint
"did you mean 'sigmoid'?"
"""

from __future__ import annotations

import difflib
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
    "did_you_mean",
]


def did_you_mean(name: object, known: "list[str] | tuple[str, ...]") -> str | None:
    """``"did you mean 'sigmoid'?"`` when a known name is close to ``name`` (a typo), else None."""
    if not isinstance(name, str):
        return None
    names = [str(k) for k in known]
    same = [k for k in names if k.lower() == name.lower()]  # ReLU for relu, w1 for W1
    close = same or difflib.get_close_matches(name, names, n=1)
    return f"did you mean {close[0]!r}?" if close else None


class SymbackpropError(Exception):
    """Base class of every error symbackprop raises on bad input.

    ``hint`` is a likely fix in a few words, or None when there is none to
    suggest (the message itself may already say it).
    """

    hint: str | None = None

    def __init__(self, *args: object, hint: str | None = None) -> None:
        super().__init__(*args)
        if hint:
            self.hint = hint
            self.add_note(f"hint: {hint}")


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
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}", hint=did_you_mean(name, self.known))

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class ShapeError(SymbackpropError, ValueError):
    """An array or expression has the wrong shape."""


class FormulaSyntaxError(SymbackpropError, ValueError):
    """A user's formula could not be parsed.

    ``position`` is the 0-based character offset of the fault; ``str(err)``
    shows the formula with a caret under it.
    """

    def __init__(self, message: str, text: str = "", position: int | None = None, *, hint: str | None = None) -> None:
        self.message = message
        self.text = text
        self.position = position
        super().__init__(message, hint=hint)

    def located(self) -> str:
        """The message with the position, on one line."""
        return self.message if self.position is None else f"{self.message} (at position {self.position})"

    def caret(self) -> list[str]:
        """Two lines, the formula and a caret under the fault; none when there is no position or it is too long."""
        if self.position is None or not self.text or len(self.text) > 200:
            return []
        # show only a printable one-line copy, so control, bidirectional and
        # unpaired surrogate characters in hostile input never reach a terminal
        shown = "".join(c if _one_column(c) else "?" for c in self.text)
        return [f"  {shown}", f"  {' ' * min(self.position, len(shown))}^"]

    def __str__(self) -> str:
        return "\n".join([self.located(), *self.caret()])


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

r"""Definition lines of a forward pass: ``name = expression``.

A model's forward pass is written as equations, one per line
(``"z1 = W1 @ X + b1"``).  :func:`split_definition` splits such a line into
the defined name and the text of its right-hand side, with the offset at
which that text starts, so an error in the right-hand side can point into the
whole line; :func:`parse_definition` also parses the right-hand side, with
positions counted from the start of the line.

>>> split_definition("z1 = W1 @ X + b1")
('z1', 'W1 @ X + b1', 5)
>>> name, tree = parse_definition("a1 = tanh(z1)")
>>> name, tree.pos, tree.args[0].pos
('a1', 5, 10)

The name is an identifier: ASCII letters, digits and ``_``, starting with a
letter, at most :data:`MAX_NAME_LENGTH` characters, and neither a Python
keyword nor one of the parser's reserved words.  The line holds exactly one
``=`` outside brackets (``==``, ``<=``, ``>=`` and ``!=`` are comparisons and
are refused) and is at most :data:`~symbackprop.language.syntax.MAX_LENGTH`
characters long, as a formula is.  Every fault raises
:class:`~symbackprop.errors.FormulaSyntaxError` with its position, saying
that a line is ``name = expression``.
"""

from __future__ import annotations

import keyword
import re

from ..errors import FormulaError, FormulaSyntaxError
from . import syntax
from .syntax import MAX_LENGTH, RESERVED_WORDS

__all__ = ["MAX_NAME_LENGTH", "split_definition", "parse_definition"]

#: the longest name a definition may give
MAX_NAME_LENGTH = 64

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_WHITESPACE = " \t\r\n"  # what the formula lexer skips; str.strip() would also drop control characters
_OPENING, _CLOSING = "([{", ")]}"
_EXPECTED = "a definition is name = expression"


def _error(message: str, text: str, position: int) -> FormulaSyntaxError:
    return FormulaSyntaxError(f"{message}; {_EXPECTED}", text, position)


def _shown(name: str) -> str:
    return repr(name if len(name) <= 40 else name[:37] + "...")


def _equals_sign(text: str) -> int:
    """The offset of the one ``=`` outside brackets; raises unless there is exactly one."""
    found: int | None = None
    depth = 0
    for index, char in enumerate(text):
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth = max(depth - 1, 0)  # an unmatched bracket is the parser's to report
        elif char == "=":
            before = text[index - 1] if index else ""
            after = text[index + 1] if index + 1 < len(text) else ""
            if after == "=" or before == "=":
                raise _error("'==' compares, it does not define", text, index - (before == "="))
            if before in "<>!" and before:
                raise _error(f"'{before}=' compares, it does not define", text, index - 1)
            if depth:
                continue  # inside brackets: the parser refuses it with its own message
            if found is not None:
                raise _error("a second '='", text, index)
            found = index
    if found is None:
        raise _error("no '='", text, len(text))
    return found


def split_definition(text: str) -> tuple[str, str, int]:
    """``"z1 = W1 @ X + b1"`` → ``("z1", "W1 @ X + b1", 5)``: the name, the right-hand side and its offset.

    The right-hand side is returned without the whitespace around it; the
    offset is where it starts in ``text``, so ``text[offset:]`` begins with it.
    """
    if not isinstance(text, str):
        raise FormulaError(f"a definition must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaSyntaxError(f"definition is longer than {MAX_LENGTH} characters ({len(text)})", text, MAX_LENGTH)
    equals = _equals_sign(text)
    lo, hi = 0, equals
    while lo < hi and text[lo] in _WHITESPACE:
        lo += 1
    while hi > lo and text[hi - 1] in _WHITESPACE:
        hi -= 1
    name = text[lo:hi]
    if not name:
        raise _error("expected a name before '='", text, lo)
    if _NAME.fullmatch(name) is None:
        if name[0].isascii() and (name[0].isdigit() or name[0] == "_"):
            problem = "starts with a digit" if name[0].isdigit() else "starts with '_'"
        else:
            problem = "is not one name (letters, digits and '_', starting with a letter)"
        raise _error(f"{_shown(name)} {problem}", text, lo)
    if len(name) > MAX_NAME_LENGTH:
        raise _error(f"the name {_shown(name)} is longer than {MAX_NAME_LENGTH} characters", text, lo)
    if keyword.iskeyword(name) or name in RESERVED_WORDS:  # the words a formula may not mention
        raise _error(f"{name!r} is a reserved word and cannot be defined", text, lo)
    start, end = equals + 1, len(text)
    while start < end and text[start] in _WHITESPACE:
        start += 1
    while end > start and text[end - 1] in _WHITESPACE:
        end -= 1
    if start == end:
        raise _error(f"expected an expression after '{name} ='", text, start)
    return name, text[start:end], start


def parse_definition(text: str) -> tuple[str, syntax.Node]:
    """The name a line defines and the tree of its right-hand side, positions counted in the whole line.

    A syntax error in the right-hand side points into ``text`` too.
    """
    name, _, start = split_definition(text)
    return name, syntax.parse(text, start)

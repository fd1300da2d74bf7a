r"""Parser for the formulas users type: hand-derived gradients, custom activations.

A formula is parsed by a tokenizer and a precedence-climbing parser into a small
tree of frozen dataclasses (:class:`Number`, :class:`Name`, :class:`Call`,
:class:`BinOp`, :class:`Neg`, :class:`Transpose`).  Nothing in a formula is ever
evaluated: the text is never handed to ``eval``, ``exec``, ``compile``, SymPy's
``sympify`` or ``parse_expr``.  Plain, MATLAB-flavoured and LaTeX-flavoured
spellings are all read by the one grammar:

>>> unparse(parse(r"(W^{(2)\top} \delta^{(2)}) \odot \sigma'(z^{(1)})"))
"(W^{(2)}.T delta^{(2)}) .* sigma'(z^{(1)})"
>>> unparse(parse("W2' * delta2 .* a1 .* (1 - a1)"))
'W2.T * delta2 .* a1 .* (1 - a1)'

Grammar
-------
Operators, from lowest to highest precedence::

    expression = product { ("+" | "-") product }                  left-assoc.
    product    = unary { product-op unary | operand-start unary }  left-assoc.
    unary      = ("+" | "-") unary | power
    power      = postfix [ ("^" | "**" | ".^") unary ]             right-assoc.
    postfix    = primary { transpose | layer-superscript | entry }
    primary    = number | name | call | latex-function | "\frac" "{" expression "}" "{" expression "}"
               | "(" expression ")" | "[" expression "]" | "{" expression "}"

* ``-`` may also be written ``−`` (U+2212).  ``-a^2`` is ``-(a^2)`` and
  ``a^-b`` is ``a^(-b)``; ``+a`` is just ``a``.
* Product operators, all of one precedence: ``@`` (``matmul``); ``*``, ``·``,
  ``×``, ``\cdot``, ``\times`` (``mul``); ``/`` (``div``); ``.*``, ``⊙``,
  ``\odot``, ``\circ`` (``hadamard``); ``./`` (``hdiv``).  Juxtaposition is a
  product too (``juxt``): an operand directly followed by something that starts
  an operand (a number, a name, a LaTeX function, ``\frac``, ``(``, ``[``,
  ``{``), as in ``2 a``, ``2(a - y)``, ``W^{(2)\top} \delta^{(2)}``.  A sign
  never starts a juxtaposed operand: ``a -b`` is ``a - b``.  Being of one
  precedence and left-associative, ``a / 2 b`` is ``(a / 2) b``.
* Transposes (postfix): ``a.T``, ``a'``, ``a^T``, ``a^{T}``, ``a^\top``,
  ``a^{\top}``, ``a^⊤``, ``a^\intercal``, ``aᵀ``.  An apostrophe must touch
  what it transposes (``a '`` is an error) and, as in MATLAB, not touch an
  operand after it (``a'b`` is an error, ``a' b`` is ``a.T b``).  Because
  ``^T`` is a transpose, a power whose exponent starts with the name ``T``
  needs parentheses: ``a^(T)``.
* Layer superscripts on a name: ``W^{(2)}`` is ``Name('W', layer=2)``,
  ``a^{(L-1)}`` is ``Name('a', layer=LayerRef('L', -1))``; the layer is a
  non-negative integer or a name with an optional ``+``/``-`` integer offset.
  A transpose mark may close it: ``W^{(2)\top}``, ``W^{(2)T}``, and so may the
  LaTeX idiom ``W^{(2)}{}^\top``.  Any other ``^{(...)}`` is a power.
* Names: ``[A-Za-z][A-Za-z0-9_]*`` (``W1``, ``delta2``, ``W_1`` are single
  names; the consumer splits trailing digits).  ``W_{12}`` is the name
  ``W_12``.  Lowercase Greek letters, as characters (``δ``) or LaTeX commands
  (``\delta``, also ``\varepsilon``, ``\varphi``, ...), are the names
  ``delta`` etc.; digits and an ``_`` subscript right after a Greek letter
  belong to the name (``δ2`` is ``delta2``, ``\delta_{l}`` is ``delta_l``) but
  letters do not (``δa`` is ``delta`` times ``a``).  ``\mathbf{..}``,
  ``\boldsymbol{..}``, ``\bm{..}``, ``\mathrm{..}``, ``\mathit{..}``,
  ``\mathsf{..}`` and ``\operatorname{..}`` hold one name or number and are
  unwrapped: ``\operatorname{tr}(A)`` is a call of ``tr``, ``\mathbf{1}`` is
  the number ``1``.
* Numbers: ``2``, ``0.5``, ``.5``, ``1e-3``; kept as text, never converted.
* Entries (postfix): ``W2[0, 1]`` (row, column) and ``a1[0]`` (one index, for
  a vector), 0-based whole numbers of at most :data:`MAX_INDEX`, the ``[``
  touching what it indexes.  Anything else in touching brackets stays what it
  was (``a[b + c]`` is a product), but a comma makes it an entry, so
  ``W2[i, j]`` is an error.

Calls
-----
**A name is called when** ``(`` **follows it with no space in between**:
``f(x)`` is a call, ``f (x)`` is ``f`` times ``x``.  Derivative marks may stand
between the name and ``(``: ``sigmoid'(z1)`` and ``\sigma^{\prime}(z)`` have
``derivative=1``, ``f''(x)`` has 2; apostrophes must touch each other, the name
and the ``(``.  Arguments are comma-separated, at least one.  The LaTeX
functions ``\log``, ``\ln``, ``\exp``, ``\tanh``, ``\sinh``, ``\cosh``,
``\sin``, ``\cos``, ``\max``, ``\min`` take either a parenthesised argument
list (spaces allowed) or one unary operand: ``\log a^2`` is ``log(a^2)``,
``\log 2 a`` is ``log(2) a``.

LaTeX extras
------------
``$...$`` and ``$$...$$`` around the whole formula are stripped.  ``\left``,
``\right``, ``\big``, ``\Big``, ``\bigg``, ``\Bigg`` (and their ``l``/``r``
forms) before a bracket are ignored, as are the spaces ``\,``, ``\;``,
``\:``, ``\!``, ``\ ``, ``\quad``, ``\qquad``.  Every other command is an
error that lists the known ones.  ``=`` and ``\partial`` are errors: give only
the right-hand side.

Limits
------
Formulas come from users and are treated as hostile.  Every problem raises
:class:`~symbackprop.errors.FormulaSyntaxError` with the 0-based offset of the
fault.  Outside ASCII only the lowercase Greek letters and ``⊙ · × − ⊤ ᵀ`` are
accepted (so homoglyphs, invisible and bidirectional characters are refused);
whitespace is space, tab, CR and LF.  Python keywords and code-running builtins
(``import``, ``lambda``, ``eval``, ``getattr``, ...) and names starting with
``_`` are refused.  At most :data:`MAX_LENGTH` characters, :data:`MAX_TOKENS`
tokens, :data:`MAX_NUMBER_LENGTH` characters in a number and :data:`MAX_DEPTH`
levels of nesting (brackets, calls, signs, exponents), and at most
:data:`MAX_DEPTH` operations inside one another in the tree (each operator of
a chain ``a + b + c + ...`` is one more), so code that recurses over a parsed
tree cannot exhaust Python's stack.  :func:`walk` and :func:`unparse` do not
recurse at all, for trees built by hand.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

from symbackprop.errors import FormulaSyntaxError

__all__ = [
    "BINARY_OPS",
    "MAX_DEPTH",
    "MAX_INDEX",
    "MAX_LENGTH",
    "MAX_NUMBER_LENGTH",
    "MAX_TOKENS",
    "RESERVED_WORDS",
    "BinOp",
    "Call",
    "Entry",
    "LayerRef",
    "Name",
    "Neg",
    "Node",
    "Number",
    "Transpose",
    "parse",
    "unparse",
    "walk",
]

MAX_LENGTH = 2000
MAX_TOKENS = 1000
MAX_NUMBER_LENGTH = 40
MAX_DEPTH = 64
#: the largest index of an entry, ``W2[i, j]``: a hand-checked entry is one of the first few
MAX_INDEX = 9999

# Python keywords and builtins that run or reflect code.  The tree is never
# executed, but a consumer may map names to functions; refusing these keeps
# such a mapping from ever being asked for them.
RESERVED_WORDS = frozenset(
    {
        "False", "None", "True", "and", "as", "assert", "async", "await", "break",
        "class", "continue", "def", "del", "elif", "else", "except", "finally",
        "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
        "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
        "breakpoint", "compile", "delattr", "eval", "exec", "getattr", "globals",
        "locals", "setattr", "vars",
    }
)  # fmt: skip

_PRECEDENCE = {
    "add": 1, "sub": 1,
    "matmul": 2, "mul": 2, "div": 2, "hadamard": 2, "hdiv": 2, "juxt": 2,
    "pow": 4,
}  # fmt: skip
_NEG_PRECEDENCE = 3
_ATOM_PRECEDENCE = 5
BINARY_OPS = frozenset(_PRECEDENCE)


# ---------------------------------------------------------------------------
# The tree.  ``pos`` is left out of equality so trees compare by structure.


@dataclass(frozen=True, slots=True)
class LayerRef:
    """A symbolic layer index: ``L-1`` is ``LayerRef('L', -1)``."""

    symbol: str
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Number:
    """A numeric literal, kept as its source text (``'1e-3'``)."""

    text: str
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Name:
    """A name, with the layer of a ``^{(...)}`` superscript if it had one."""

    id: str
    layer: int | LayerRef | None = None
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Call:
    """``func(args)``; ``derivative`` counts the derivative marks (``f''(x)``: 2)."""

    func: str
    args: tuple[Node, ...]
    derivative: int = 0
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BinOp:
    """A binary operation; ``op`` is one of :data:`BINARY_OPS`."""

    op: str
    left: Node
    right: Node
    pos: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op not in BINARY_OPS:
            raise ValueError(f"unknown operator {self.op!r}; known: {', '.join(sorted(BINARY_OPS))}")


@dataclass(frozen=True, slots=True)
class Neg:
    """Unary minus."""

    operand: Node
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Transpose:
    """A matrix transpose."""

    operand: Node
    pos: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry of a matrix, ``W2[0, 1]``: 0-based indices, a row and a column, or one index for a vector."""

    operand: Node
    indices: tuple[int, ...]
    pos: int = field(default=0, compare=False, repr=False)


Node = Number | Name | Call | BinOp | Neg | Transpose | Entry


# ---------------------------------------------------------------------------
# Tokenizer

_WHITESPACE = frozenset(" \t\r\n")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENTIFIER_CHAR = re.compile(r"[A-Za-z0-9_]")
_GREEK_TAIL = re.compile(r"[0-9]*(?:_[A-Za-z0-9_]*)?")
_BRACED_SUBSCRIPT = re.compile(r"\{([A-Za-z0-9]+)\}")
_COMMAND = re.compile(r"\\([A-Za-z]+|[ -~])")
_COMMAND_LETTERS = re.compile(r"\\([A-Za-z]+)")

# Omicron is left out: it is indistinguishable from Latin 'o' and LaTeX has no
# command for it.
_GREEK_LETTERS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "chi": "χ",
    "psi": "ψ", "omega": "ω",
}  # fmt: skip
_GREEK_BY_CHAR = {char: name for name, char in _GREEK_LETTERS.items()}
_GREEK_COMMANDS = {name: name for name in _GREEK_LETTERS} | {
    "varepsilon": "epsilon", "vartheta": "theta", "varpi": "pi",
    "varrho": "rho", "varsigma": "sigma", "varphi": "phi",
}  # fmt: skip

_SPACING_COMMANDS = frozenset({",", ";", ":", "!", " ", "quad", "qquad"})
_SIZING_COMMANDS = frozenset(
    {"left", "right"} | {size + side for size in ("big", "Big", "bigg", "Bigg") for side in ("", "l", "r")}
)
_WRAPPER_COMMANDS = frozenset({"mathbf", "boldsymbol", "bm", "mathrm", "mathit", "mathsf", "operatorname"})
_FUNCTION_COMMANDS = frozenset({"log", "ln", "exp", "tanh", "sinh", "cosh", "sin", "cos", "max", "min"})
_TOKEN_COMMANDS = {
    "top": ("top", ""), "intercal": ("top", ""), "prime": ("prime", ""),
    "odot": ("op", "hadamard"), "circ": ("op", "hadamard"),
    "cdot": ("op", "mul"), "times": ("op", "mul"), "frac": ("frac", ""),
}  # fmt: skip
_KNOWN_COMMANDS = ", ".join(
    "\\" + name
    for name in sorted(
        set(_GREEK_COMMANDS) | _SPACING_COMMANDS | _SIZING_COMMANDS | _WRAPPER_COMMANDS
        | _FUNCTION_COMMANDS | set(_TOKEN_COMMANDS)
    )
)  # fmt: skip

#: a layer in superscript parentheses, as the text printer writes it (W⁽²⁾)
_SUPERSCRIPT_LAYER = re.compile("\u207d([\u2070\u00b9\u00b2\u00b3\u2074-\u2079]{1,6})\u207e")
_FROM_SUPERSCRIPT = str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079", "0123456789")

_TWO_CHAR_SYMBOLS = {"**": ("op", "pow"), ".^": ("op", "pow"), ".*": ("op", "hadamard"), "./": ("op", "hdiv")}
_ONE_CHAR_SYMBOLS = {
    "+": ("op", "add"), "-": ("op", "sub"), "−": ("op", "sub"),
    "@": ("op", "matmul"), "*": ("op", "mul"), "·": ("op", "mul"), "×": ("op", "mul"),
    "/": ("op", "div"), "⊙": ("op", "hadamard"), "^": ("op", "pow"),
    "'": ("'", ""), "ᵀ": ("postT", ""), "⊤": ("top", ""), ",": (",", ""),
    "(": ("(", ""), ")": (")", ""), "[": ("[", ""), "]": ("]", ""), "{": ("{", ""), "}": ("}", ""),
}  # fmt: skip
#: a module name just before a '.', as in np.tanh(x) or math.exp(x)
_MODULE_PREFIX = re.compile(r"(?<![A-Za-z0-9_])(np|numpy|math|torch|jnp|jax|sympy|sp|tf|scipy|F)$")
_CHARACTER_HINTS = {
    "=": "'=' is not allowed: give only the right-hand side",
    "$": "'$' is only allowed around the whole formula, as $...$ or $$...$$",
    '"': "strings are not allowed",
    ".": "'.' is only allowed in numbers and in '.T', '.*', './', '.^' (there is no attribute access)",
}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # 'num', 'name', 'func', 'op', 'frac', 'top', 'prime', 'postT', 'end' or the punctuation itself
    value: str  # the number's text, the name, or the operator ('add', 'pow', ...)
    text: str  # the source text, for messages
    pos: int
    end: int


class _Lexer:
    """Turns ``text[lo:hi]`` into tokens, refusing anything outside the language."""

    def __init__(self, text: str, lo: int, hi: int) -> None:
        self.text = text
        self.hi = hi
        self.pos = lo
        self.tokens: list[_Token] = []

    def error(self, message: str, pos: int) -> FormulaSyntaxError:
        return FormulaSyntaxError(message, self.text, pos)

    def run(self) -> list[_Token]:
        while self.pos < self.hi:
            char = self.text[self.pos]
            if char in _WHITESPACE:
                self.pos += 1
                continue
            start = self.pos
            atom = self.atom(start)
            if atom is not None:
                self.emit(atom[0], atom[1], start, atom[2])
            elif char == "\\":
                self.command(start)
            else:
                self.symbol(start)
        self.tokens.append(_Token("end", "", "", self.hi, self.hi))
        return self.tokens

    def emit(self, kind: str, value: str, start: int, end: int) -> None:
        if len(self.tokens) >= MAX_TOKENS:
            raise self.error(f"formula has more than {MAX_TOKENS} tokens", start)
        self.tokens.append(_Token(kind, value, self.text[start:end], start, end))
        self.pos = end

    def atom(self, pos: int) -> tuple[str, str, int] | None:
        """Read a number or a name at ``pos``: ``(kind, value, end)``, or None."""
        text, hi = self.text, self.hi
        char = text[pos]
        following = text[pos + 1] if pos + 1 < hi else ""
        if "0" <= char <= "9" or (char == "." and "0" <= following <= "9"):
            match = _NUMBER.match(text, pos, hi)
            assert match is not None  # the first character is a digit or '.digit'
            if match.end() - pos > MAX_NUMBER_LENGTH:
                raise self.error(f"number longer than {MAX_NUMBER_LENGTH} characters", pos)
            return "num", match.group(), match.end()
        if char.isascii() and (char.isalpha() or char == "_"):
            return self.name("", pos, _IDENTIFIER)
        if char in _GREEK_BY_CHAR:
            return self.name(_GREEK_BY_CHAR[char], pos + 1, _GREEK_TAIL)
        if char == "\\":
            match = _COMMAND_LETTERS.match(text, pos, hi)
            if match is not None and match.group(1) in _GREEK_COMMANDS:
                return self.name(_GREEK_COMMANDS[match.group(1)], match.end(), _GREEK_TAIL)
        return None

    def name(self, head: str, pos: int, tail: re.Pattern[str]) -> tuple[str, str, int]:
        """Finish a name: ``head`` plus what ``tail`` matches plus a ``_{...}`` subscript."""
        text, hi = self.text, self.hi
        start = pos
        match = tail.match(text, pos, hi)
        assert match is not None  # both tails match the empty string
        name, pos = head + match.group(), match.end()
        layer = _SUPERSCRIPT_LAYER.match(text, pos, hi)
        if layer is not None:  # W⁽²⁾, δ⁽¹⁾: the layer as symbackprop's own text prints it
            name, pos = name + layer.group(1).translate(_FROM_SUPERSCRIPT), layer.end()
        if name.endswith("_") and pos < hi and text[pos] == "{":
            subscript = _BRACED_SUBSCRIPT.match(text, pos, hi)
            if subscript is None:
                raise self.error("a subscript in braces holds only letters and digits, as in W_{12}", pos)
            name, pos = name + subscript.group(1), subscript.end()
        if name.startswith("_"):
            raise self.error(f"names must not start with '_' ({name!r})", start)
        # A Greek head ('lambda' from λ) is not a Python word; only ASCII spellings (no head) are checked.
        if not head and name in RESERVED_WORDS:
            hint = " (write λ or \\lambda for the Greek letter)" if name == "lambda" else ""
            raise self.error(f"{name!r} is a reserved word and cannot be used in a formula{hint}", start)
        return "name", name, pos

    def skip_spaces(self, pos: int) -> int:
        while pos < self.hi and self.text[pos] in _WHITESPACE:
            pos += 1
        return pos

    def command(self, start: int) -> None:
        if start + 1 >= self.hi:
            raise self.error("a lone '\\' ends the formula", start)
        match = _COMMAND.match(self.text, start, self.hi)
        if match is None:
            raise self.refusal(start + 1)
        name, end = match.group(1), match.end()
        if name in _SPACING_COMMANDS:
            self.pos = end
        elif name in _SIZING_COMMANDS:
            bracket = self.skip_spaces(end)
            if bracket >= self.hi or self.text[bracket] not in "()[]":
                raise self.error(f"\\{name} must be followed by a bracket: ( ) [ or ]", start)
            self.emit(self.text[bracket], "", start, bracket + 1)
        elif name in _WRAPPER_COMMANDS:
            self.wrapped(name, start, end)
        elif name in _FUNCTION_COMMANDS:
            self.emit("func", name, start, end)
        elif name in _TOKEN_COMMANDS:
            kind, value = _TOKEN_COMMANDS[name]
            self.emit(kind, value, start, end)
        elif name == "partial":
            raise self.error(
                "'\\partial' is not supported: give only the right-hand side, the formula of the derivative", start
            )
        else:
            raise self.error(f"unknown LaTeX command '\\{name}'; known: {_KNOWN_COMMANDS}", start)

    def wrapped(self, command: str, start: int, pos: int) -> None:
        r"""``\mathbf{W}`` and the like: one name or number in braces, unwrapped."""
        message = f"\\{command}{{...}} must hold a single name or number"
        pos = self.skip_spaces(pos)
        if pos >= self.hi or self.text[pos] != "{":
            raise self.error(message, start)
        pos = self.skip_spaces(pos + 1)
        atom = self.atom(pos) if pos < self.hi else None
        if atom is None:
            raise self.error(message, start)
        kind, value, pos = atom
        pos = self.skip_spaces(pos)
        if pos >= self.hi or self.text[pos] != "}":
            raise self.error(message, start)
        pos += 1
        if kind == "name":  # a subscript may follow the braces: \mathbf{W}_{1}
            kind, value, pos = self.name(value, pos, _GREEK_TAIL)
        self.emit(kind, value, start, pos)

    def symbol(self, start: int) -> None:
        text, hi = self.text, self.hi
        pair = text[start : min(start + 2, hi)]
        if pair in _TWO_CHAR_SYMBOLS:
            kind, value = _TWO_CHAR_SYMBOLS[pair]
            self.emit(kind, value, start, start + 2)
        elif pair == ".T" and not (start + 2 < hi and _IDENTIFIER_CHAR.match(text[start + 2])):
            self.emit("postT", "", start, start + 2)
        elif text[start] in _ONE_CHAR_SYMBOLS:
            kind, value = _ONE_CHAR_SYMBOLS[text[start]]
            self.emit(kind, value, start, start + 1)
        else:
            raise self.refusal(start)

    def refusal(self, pos: int) -> FormulaSyntaxError:
        char = self.text[pos]
        module = _MODULE_PREFIX.search(self.text, 0, pos) if char == "." else None
        if module is not None:  # np.tanh(x): NumPy's spelling of a function the language names directly
            return FormulaSyntaxError(_CHARACTER_HINTS[char], self.text, pos,
                                      hint=f"drop '{module.group(1)}.': functions are called by name, as in tanh(x)")
        if char in _CHARACTER_HINTS:
            return self.error(_CHARACTER_HINTS[char], pos)
        if " " < char <= "~":
            return self.error(f"character '{char}' is not allowed", pos)
        # Never echo the character itself: it may be invisible or reorder the line.
        return self.error(
            f"character U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')}) is not allowed; "
            "outside ASCII only lowercase Greek letters, ⊙ · × − ⊤ ᵀ and layers such as W⁽²⁾ are",
            pos,
        )


# ---------------------------------------------------------------------------
# Parser

_OPERAND_START = frozenset({"num", "name", "func", "frac", "(", "[", "{"})
_CLOSING = {"(": ")", "[": "]", "{": "}"}


def _describe(token: _Token) -> str:
    return "the end of the formula" if token.kind == "end" else f"'{token.text}'"


def _is_transpose_mark(token: _Token) -> bool:
    return token.kind == "top" or (token.kind == "name" and token.value == "T")


def _is_caret(token: _Token) -> bool:
    """Only ``^`` (not ``**`` or ``.^``) opens a LaTeX superscript."""
    return token.kind == "op" and token.text == "^"


class _Parser:
    """Precedence climbing over the token list; ``depth`` counts nesting levels."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0

    def error(self, message: str, pos: int) -> FormulaSyntaxError:
        return FormulaSyntaxError(message, self.text, pos)

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.index += 1
        return token

    def touches_previous(self, ahead: int) -> bool:
        """Whether token ``ahead`` starts exactly where the one before it ends."""
        return self.index + ahead > 0 and self.peek(ahead).pos == self.peek(ahead - 1).end

    def nested(self, depth: int, token: _Token) -> int:
        # Checked on the way down, so 10^4 open brackets fail at the 65th.
        if depth >= MAX_DEPTH:
            raise self.error(f"formula nested too deeply (more than {MAX_DEPTH} levels)", token.pos)
        return depth + 1

    def expect(self, kind: str, opener: _Token) -> None:
        token = self.peek()
        if token.kind != kind:
            raise self.error(
                f"expected '{kind}' to close '{opener.text}' at position {opener.pos}, found {_describe(token)}",
                token.pos,
            )
        self.advance()

    def formula(self) -> Node:
        if self.peek().kind == "end":
            raise self.error("empty formula", 0)
        node = self.binary(1, 0)
        token = self.peek()
        if token.kind == "end":
            return node
        if token.kind in _CLOSING.values():
            raise self.error(f"unmatched '{token.text}'", token.pos)
        if token.kind == ",":
            raise self.error("',' is only allowed between the arguments of a call", token.pos)
        raise self.error(f"unexpected {_describe(token)}", token.pos)

    def binary(self, min_precedence: int, depth: int) -> Node:
        start = self.peek().pos
        left = self.unary(depth)
        while True:
            token = self.peek()
            if token.kind == "op" and token.value != "pow":
                op = token.value
            elif token.kind in _OPERAND_START:
                op = "juxt"
            else:
                return left
            if _PRECEDENCE[op] < min_precedence:
                return left
            if op != "juxt":
                self.advance()
            right = self.binary(_PRECEDENCE[op] + 1, depth)
            left = BinOp(op, left, right, start)

    def unary(self, depth: int) -> Node:
        token = self.peek()
        if token.kind == "op" and token.value in ("add", "sub"):
            self.advance()
            operand = self.unary(self.nested(depth, token))
            return operand if token.value == "add" else Neg(operand, token.pos)
        return self.power(depth)

    def power(self, depth: int) -> Node:
        start = self.peek().pos
        base = self.postfix(self.primary(depth), start)
        token = self.peek()
        if token.kind == "op" and token.value == "pow":
            self.advance()
            return BinOp("pow", base, self.unary(self.nested(depth, token)), start)
        return base

    def primary(self, depth: int) -> Node:
        token = self.advance()
        if token.kind == "num":
            return Number(token.value, token.pos)
        if token.kind == "name":
            return self.name_or_call(token, depth)
        if token.kind == "func":
            return self.latex_function(token, depth)
        if token.kind == "frac":
            numerator = self.braced_argument(depth)
            return BinOp("div", numerator, self.braced_argument(depth), token.pos)
        if token.kind in _CLOSING:
            return self.group(token, depth)
        if token.kind == "'":
            raise self.error("strings are not allowed; ' marks a transpose or a derivative", token.pos)
        raise self.error(f"expected a number, a name or '(' but found {_describe(token)}", token.pos)

    def group(self, opener: _Token, depth: int) -> Node:
        if opener.kind == "{" and self.peek().kind == "}":
            raise self.error("empty braces '{}' (allowed only before a superscript, as in W^{(2)}{}^\\top)", opener.pos)
        node = self.binary(1, self.nested(depth, opener))
        self.expect(_CLOSING[opener.kind], opener)
        return node

    def braced_argument(self, depth: int) -> Node:
        opener = self.advance()
        if opener.kind != "{":
            raise self.error("\\frac needs two arguments in braces, as in \\frac{a}{b}", opener.pos)
        return self.group(opener, depth)

    def derivative_marks(self) -> tuple[int, int, bool]:
        r"""Look ahead for ``'``, ``^\prime`` and ``^{\prime...}`` without consuming.

        Returns the number of marks, the number of tokens they span, and whether
        a ``\prime`` was among them (a prime cannot be a transpose, so it must be
        followed by a call).
        """
        count = ahead = 0
        saw_prime = False
        while True:
            token = self.peek(ahead)
            if token.kind == "'" and self.touches_previous(ahead):
                count, ahead = count + 1, ahead + 1
            elif _is_caret(token) and self.peek(ahead + 1).kind == "prime":
                count, ahead, saw_prime = count + 1, ahead + 2, True
            elif _is_caret(token) and self.peek(ahead + 1).kind == "{" and self.peek(ahead + 2).kind == "prime":
                close = ahead + 2
                while self.peek(close).kind == "prime":
                    close += 1
                if self.peek(close).kind != "}":
                    return count, ahead, saw_prime
                count, ahead, saw_prime = count + close - ahead - 2, close + 1, True
            else:
                return count, ahead, saw_prime

    def name_or_call(self, token: _Token, depth: int) -> Node:
        marks, span, saw_prime = self.derivative_marks()
        if self.peek(span).kind == "(" and self.touches_previous(span):
            self.index += span
            return Call(token.value, self.arguments(depth), marks, token.pos)
        if saw_prime:
            raise self.error("expected '(' right after the derivative mark", self.peek(span).pos)
        # Apostrophes not followed by '(' are transposes, read by postfix().
        return Name(token.value, None, token.pos)

    def latex_function(self, token: _Token, depth: int) -> Node:
        marks, span, _ = self.derivative_marks()
        self.index += span
        if self.peek().kind == "(":
            return Call(token.value, self.arguments(depth), marks, token.pos)
        operand = self.unary(self.nested(depth, token))
        return Call(token.value, (operand,), marks, token.pos)

    def arguments(self, depth: int) -> tuple[Node, ...]:
        opener = self.advance()
        depth = self.nested(depth, opener)
        if self.peek().kind == ")":
            raise self.error("a call needs at least one argument", self.peek().pos)
        args = [self.binary(1, depth)]
        while self.peek().kind == ",":
            self.advance()
            args.append(self.binary(1, depth))
        self.expect(")", opener)
        return tuple(args)

    def transpose_superscript(self) -> int:
        """Tokens spanned by ``^T``, ``^\\top``, ``^{T}`` or ``^{\\top}`` ahead, else 0."""
        if not _is_caret(self.peek()):
            return 0
        if _is_transpose_mark(self.peek(1)):
            return 2
        if self.peek(1).kind == "{" and _is_transpose_mark(self.peek(2)) and self.peek(3).kind == "}":
            return 4
        return 0

    def layer_superscript(self) -> tuple[int | LayerRef, bool, int] | None:
        """``^{(2)}``, ``^{(L-1)}``, ``^{(2)\\top}`` ahead: (layer, transposed, tokens spanned)."""
        if not (_is_caret(self.peek()) and self.peek(1).kind == "{" and self.peek(2).kind == "("):
            return None
        token = self.peek(3)
        ahead = 4
        layer: int | LayerRef
        if token.kind == "num" and token.value.isdigit():
            layer = int(token.value)
        elif token.kind == "name":
            sign, offset = self.peek(ahead), self.peek(ahead + 1)
            if sign.kind == "op" and sign.value in ("add", "sub") and offset.kind == "num" and offset.value.isdigit():
                layer = LayerRef(token.value, int(offset.value) if sign.value == "add" else -int(offset.value))
                ahead += 2
            else:
                layer = LayerRef(token.value, 0)
        else:
            return None
        if self.peek(ahead).kind != ")":
            return None
        transposed = _is_transpose_mark(self.peek(ahead + 1))
        ahead += 1 + transposed
        if self.peek(ahead).kind != "}":
            return None
        return layer, transposed, ahead + 1

    def postfix(self, node: Node, start: int) -> Node:
        while True:
            token = self.peek()
            if token.kind == "postT":
                self.advance()
                node = Transpose(node, start)
            elif token.kind == "'":
                if not self.touches_previous(0):
                    raise self.error("a transpose mark ' must directly follow what it transposes", token.pos)
                self.advance()
                # As in MATLAB, a'b is refused: it keeps quoted text such as f'{x}' or b'..' from parsing.
                if self.touches_previous(0) and self.peek().kind in _OPERAND_START:
                    raise self.error(
                        "a transpose mark ' cannot be followed directly by an operand (strings are not allowed); "
                        "put a space or an operator after it",
                        token.pos,
                    )
                node = Transpose(node, start)
            elif span := self.transpose_superscript():
                self.index += span
                node = Transpose(node, start)
            elif isinstance(node, Name) and node.layer is None and (layer := self.layer_superscript()):
                value, transposed, span = layer
                self.index += span
                node = Name(node.id, value, node.pos)
                if transposed:
                    node = Transpose(node, start)
            elif token.kind == "{" and self.peek(1).kind == "}" and _is_caret(self.peek(2)):
                self.index += 2  # the LaTeX idiom W^{(2)}{}^\top: an empty base for the next superscript
            elif token.kind == "[" and self.touches_previous(0) and (entry := self.entry_indices()):
                indices, span = entry
                self.index += span
                node = Entry(node, indices, start)
            else:
                return node

    def entry_indices(self) -> tuple[tuple[int, ...], int] | None:
        """``[i]`` or ``[i, j]`` ahead, touching what it indexes: (indices, tokens spanned).

        Only whole numbers make an entry; ``a[b + c]`` stays the product it always was.  A bracket
        with a comma (``W2[i, j]``) cannot be a product, so anything but whole numbers in it is an error.
        """
        ahead, indices = 1, []
        while True:
            token = self.peek(ahead)
            if token.kind != "num" or not token.value.isdigit():
                if self.peek(ahead + 1).kind == "," or (indices and self.peek(ahead - 1).kind == ","):
                    raise self.error("an entry's indices are whole numbers counted from 0, as in W2[0, 1]",
                                     token.pos)
                return None
            if int(token.value) > MAX_INDEX:
                raise self.error(f"an entry's index is at most {MAX_INDEX}, not {token.value}", token.pos)
            indices.append(int(token.value))
            following = self.peek(ahead + 1)
            if following.kind == "]":
                return tuple(indices), ahead + 2
            if following.kind != "," or len(indices) == 2:
                if following.kind == ",":
                    raise self.error("an entry has at most two indices, a row and a column", following.pos)
                return None
            ahead += 2


def _strip_delimiters(text: str, start: int = 0) -> tuple[int, int]:
    """Bounds of the formula in ``text[start:]`` inside optional ``$...$`` / ``$$...$$`` and ASCII whitespace."""
    lo, hi = start, len(text)
    # Only the whitespace the lexer skips: str.strip() would also drop control characters.
    while lo < hi and text[lo] in _WHITESPACE:
        lo += 1
    while hi > lo and text[hi - 1] in _WHITESPACE:
        hi -= 1
    for delimiter in ("$$", "$"):
        width = len(delimiter)
        if hi - lo >= 2 * width and text.startswith(delimiter, lo) and text.endswith(delimiter, lo, hi):
            return lo + width, hi - width
    return lo, hi


def parse(text: str, start: int = 0) -> Node:
    r"""Parse a formula into a tree; raise :class:`FormulaSyntaxError` if it is not one.

    ``start`` parses only ``text[start:]`` (the right-hand side of a
    definition line) while positions, in the tree and in errors, still count
    from the start of ``text``.

    >>> parse("2 a")
    BinOp(op='juxt', left=Number(text='2'), right=Name(id='a', layer=None))
    >>> parse(r"\sigma'(z^{(1)})")
    Call(func='sigma', args=(Name(id='z', layer=1),), derivative=1)
    """
    if not isinstance(text, str):
        raise TypeError(f"a formula must be a str, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise FormulaSyntaxError(f"formula is longer than {MAX_LENGTH} characters ({len(text)})", text, MAX_LENGTH)
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= len(text):
        raise TypeError(f"start must be an offset from 0 to {len(text)} in the formula, not {start!r}")
    lo, hi = _strip_delimiters(text, start)
    tree = _Parser(text, _Lexer(text, lo, hi).run()).formula()
    _check_depth(tree, text)
    return tree


# ---------------------------------------------------------------------------
# Walking and printing, without recursion: trees built by hand may be deep.


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, BinOp):
        return node.left, node.right
    if isinstance(node, (Neg, Transpose, Entry)):
        return (node.operand,)
    if isinstance(node, Call):
        return node.args
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Yield ``node`` and every node under it, parents first, left to right."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(_children(current)))


def _check_depth(tree: Node, text: str) -> None:
    """Refuse trees with more than :data:`MAX_DEPTH` operations inside one another.

    Bracket nesting is bounded while parsing; this bounds what it cannot see, the
    left spine that a long chain ``a + b + c + ...`` builds without any bracket.
    """
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FormulaSyntaxError(
                f"formula nested too deeply: more than {MAX_DEPTH} operations inside one another "
                "(each operator of a chain such as a + b + c counts)",
                text,
                node.pos,
            )
        stack.extend((child, depth + 1) for child in _children(node))


_SYMBOLS = {
    "add": " + ", "sub": " - ", "matmul": " @ ", "mul": " * ", "div": " / ",
    "hadamard": " .* ", "hdiv": " ./ ", "juxt": " ", "pow": "^",
}  # fmt: skip
# 'lambda' is reserved as a plain name, so the Greek letter prints as itself.
_SPELLING = {"lambda": _GREEK_LETTERS["lambda"]}


def _precedence(node: Node) -> int:
    if isinstance(node, BinOp):
        return _PRECEDENCE[node.op]
    return _NEG_PRECEDENCE if isinstance(node, Neg) else _ATOM_PRECEDENCE


def _leads_with_t(node: Node) -> bool:
    """Whether ``node`` prints starting with the name ``T`` (``a^T...`` would read as a transpose)."""
    while True:
        if isinstance(node, Name):
            return node.id == "T"
        if isinstance(node, Call):
            return node.func == "T"
        if isinstance(node, (Transpose, Entry)):
            node = node.operand
        elif isinstance(node, BinOp) and node.op == "pow":
            node = node.left
        else:
            return False
        if _precedence(node) < _ATOM_PRECEDENCE:  # printed in parentheses
            return False


def _mixes_juxtaposition(parent: BinOp, child: Node) -> bool:
    """Whether one of two products is a juxtaposition: ``a / 2 b`` is ``(a / 2) b``, but reads otherwise."""
    return (
        isinstance(child, BinOp)
        and _PRECEDENCE[child.op] == _PRECEDENCE[parent.op] == _PRECEDENCE["juxt"]
        and (child.op == "juxt") != (parent.op == "juxt")
    )


def _layer_text(layer: int | LayerRef) -> str:
    if isinstance(layer, int):
        return str(layer)
    symbol = _SPELLING.get(layer.symbol, layer.symbol)
    return symbol if layer.offset == 0 else f"{symbol}{layer.offset:+d}"


def _pieces(node: Node) -> list[str | Node | tuple[Node]]:
    """What ``node`` prints as: strings, nodes, and ``(node,)`` for a node in parentheses."""

    def wrap(child: Node, parenthesise: bool) -> Node | tuple[Node]:
        return (child,) if parenthesise else child

    if isinstance(node, Number):
        return [node.text]
    if isinstance(node, Name):
        name = _SPELLING.get(node.id, node.id)
        return [name if node.layer is None else f"{name}^{{({_layer_text(node.layer)})}}"]
    if isinstance(node, Call):
        pieces: list[str | Node | tuple[Node]] = [_SPELLING.get(node.func, node.func) + "'" * node.derivative + "("]
        for index, arg in enumerate(node.args):
            pieces += [", ", arg] if index else [arg]
        return [*pieces, ")"]
    if isinstance(node, Transpose):
        return [wrap(node.operand, _precedence(node.operand) < _ATOM_PRECEDENCE), ".T"]
    if isinstance(node, Entry):
        return [wrap(node.operand, _precedence(node.operand) < _ATOM_PRECEDENCE),
                "[" + ", ".join(map(str, node.indices)) + "]"]
    if isinstance(node, Neg):
        return ["-", wrap(node.operand, _precedence(node.operand) < _NEG_PRECEDENCE)]
    precedence = _PRECEDENCE[node.op]
    if node.op == "pow":
        left = wrap(node.left, _precedence(node.left) <= precedence)
        right = wrap(node.right, _precedence(node.right) < _NEG_PRECEDENCE or _leads_with_t(node.right))
    else:
        left = wrap(node.left, _precedence(node.left) < precedence or _mixes_juxtaposition(node, node.left))
        # Left-associative; and a juxtaposed operand cannot start with a sign ('a -b' is a subtraction).
        right = wrap(
            node.right,
            _precedence(node.right) <= precedence or (node.op == "juxt" and isinstance(node.right, Neg)),
        )
    return [left, _SYMBOLS[node.op], right]


def unparse(node: Node) -> str:
    """The canonical plain-text form of a tree; ``parse(unparse(t)) == t``.

    >>> unparse(parse(r"\\frac{1}{2} W^{(2)\\top} \\delta^{(2)}"))
    '(1 / 2) W^{(2)}.T delta^{(2)}'
    """
    out: list[str] = []
    stack: list[str | Node | tuple[Node]] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, tuple):
            stack += [")", item[0], "("]
        else:
            stack.extend(reversed(_pieces(item)))
    return "".join(out)

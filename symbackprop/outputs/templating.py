"""Jinja2 templates: one environment for every renderer, and where the templates live.

Templates hold layout only; renderers give them printed strings.  They ship
inside the package as ``symbackprop.templates`` (the top-level ``templates/``
folder of the source tree, mapped in ``pyproject.toml``); running from a source
tree without installing, the folder is found next to the package.

>>> env = environment()
>>> env.from_string("{{ name }} = {{ value }}").render(name="z1", value="W1 @ X")
'z1 = W1 @ X'

A user's templates (``template_dir``) are text from outside, so they render in
a :func:`user_environment`: Jinja2's immutable sandbox (no attributes that
start with ``_``, no methods that modify a value, no Python functions but the
filters), with every loop, number, string and the output bounded, so that a
template can lay the derivation out but can neither run code nor hang.

>>> render(user_environment(), "{{ name }} = {{ value }}", {"name": "z1", "value": "W1 @ X"}, from_string=True)
'z1 = W1 @ X'
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import posixpath
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import jinja2
import jinja2.compiler
import jinja2.loaders
import jinja2.sandbox

from ..errors import NotationError

__all__ = ["environment", "user_environment", "render", "template_folder", "MAX_OUTPUT", "MAX_ITEMS", "MAX_STEPS"]

#: the most characters a user's template may write, and the longest string or list it may make (4 MiB)
MAX_OUTPUT = 4 * 1024 * 1024
#: the most items ``range`` gives and the largest whole number a filter or function may be given
MAX_ITEMS = 10_000
#: the most steps (lines of the template run, and Python calls it makes) one rendering may take
MAX_STEPS = 1_000_000
#: the largest template file read
MAX_TEMPLATE_FILE = 1024 * 1024


def template_folder() -> Path:
    """The folder holding symbackprop's own templates.

    The package imported from a source tree uses that tree's ``templates/``,
    even when another copy of symbackprop is installed (an editable install of
    another checkout maps ``symbackprop.templates`` to its own folder).
    """
    tree = Path(__file__).resolve().parents[2]
    if (tree / "pyproject.toml").is_file() and (tree / "templates" / "derivation.tex.j2").is_file():
        return tree / "templates"
    try:
        folder = Path(str(importlib.resources.files("symbackprop.templates")))
    except ModuleNotFoundError:  # a source tree on sys.path, not installed
        folder = tree / "templates"
    return folder


def environment(*folders: str | Path) -> jinja2.Environment:
    """A Jinja2 environment over ``folders`` (searched first) and symbackprop's templates.

    Undefined variables are errors, nothing is escaped (the output is code or
    LaTeX, not HTML), block tags leave no blank lines and files keep their final
    newline.  Each call returns a new environment, so a renderer may add its
    own filters.
    """
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(folder) for folder in (*folders, template_folder())]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# --- users' templates: the sandbox ------------------------------------------------------


class TemplateLimitError(jinja2.TemplateRuntimeError):
    """A user's template went beyond one of the bounds (reported as a NotationError)."""


def _bounded_size(value: Any, what: str) -> Any:
    if isinstance(value, (str, list, tuple, dict, set, frozenset, bytes)) and len(value) > MAX_OUTPUT:
        raise TemplateLimitError(f"{what} makes a value of {len(value)} items; a template may make at most "
                                 f"{MAX_OUTPUT}")
    return value


_WIDE_FORMAT = re.compile(r"\d{7,}")


def _bounded_arguments(args: tuple, kwargs: Mapping[str, Any], what: str, depth: int = 1) -> None:
    """Refuse whole numbers beyond :data:`MAX_OUTPUT` (also inside a tuple or list argument) and too long values."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT:
            raise TemplateLimitError(f"{what} is given the number {value}; a template may use whole numbers "
                                     f"up to {MAX_OUTPUT}")
        _bounded_size(value, what)
        if depth and isinstance(value, (tuple, list)):
            _bounded_arguments(tuple(value), {}, what, depth - 1)


def _bounded_format(text: Any, what: str) -> None:
    """A format string (``%`` or ``str.format``) may not ask for a field millions of characters wide."""
    if isinstance(text, str) and _WIDE_FORMAT.search(text):
        raise TemplateLimitError(f"{what}: a format with a width or precision of millions is out of range")


def _bounded_replace(text: Any, old: Any, new: Any, *_: Any, what: str) -> None:
    """Refuse a replacement whose result would be too long, before making it."""
    text, old, new = str(text), str(old), str(new)
    count = text.count(old) if old else len(text) + 1
    if len(text) + count * (len(new) - len(old)) > MAX_OUTPUT:
        raise TemplateLimitError(f"{what} makes a string longer than {MAX_OUTPUT} characters")


def _bounded_range(*args: int) -> range:
    _bounded_arguments(args, {}, "range")
    numbers = range(*args)
    if len(numbers) > MAX_ITEMS:
        raise TemplateLimitError(f"range gives {len(numbers)} numbers; a template may ask for at most {MAX_ITEMS}")
    return numbers


def _bounded_filter(function: Callable, name: str) -> Callable:
    """``function`` with its whole-number arguments and its result bounded (Jinja's pass_context marks kept)."""

    passes = getattr(function, "jinja_pass_arg", None) is not None  # a context first: not the template's

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        given = args[1:] if passes else args
        _bounded_arguments(given, kwargs, f"the filter {name}")
        if name == "format" and given:
            _bounded_format(given[0], "the filter format")
        elif name == "replace" and len(given) >= 3:
            _bounded_replace(*given[:3], what="the filter replace")
        elif name == "join" and given and isinstance(given[0], (list, tuple)):
            _bounded_method(str(given[1]) if len(given) > 1 else "", "join", (given[0],))
        return _bounded_size(function(*args, **kwargs), f"the filter {name}")

    return bounded


def _bounded_join(*parts: Any) -> str:
    """The ``~`` operator: strings joined, refused when the result would be too long."""
    texts = [str(part) for part in parts]
    if sum(map(len, texts)) > MAX_OUTPUT:
        raise TemplateLimitError(f"'~' makes a string longer than {MAX_OUTPUT} characters")
    return "".join(texts)


class _BoundedCodeGenerator(jinja2.compiler.CodeGenerator):
    """Jinja's compiler, with ``~`` going through :func:`_bounded_join`."""

    def visit_Concat(self, node, frame) -> None:  # noqa: N802 (Jinja's name)
        self.write("environment.bounded_join(")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write(")")


class _BoundedLoader(jinja2.FileSystemLoader):
    """A file loader that reads regular files of at most :data:`MAX_TEMPLATE_FILE` bytes."""

    def get_source(self, environment, template):
        pieces = jinja2.loaders.split_template_path(template)
        for folder in self.searchpath:
            filename = posixpath.join(folder, *pieces)
            if os.path.isfile(filename):
                break
        else:
            raise jinja2.TemplateNotFound(template)
        with open(filename, "rb") as handle:
            data = handle.read(MAX_TEMPLATE_FILE + 1)
        if len(data) > MAX_TEMPLATE_FILE:
            raise TemplateLimitError(f"the template file {filename} is larger than {MAX_TEMPLATE_FILE} bytes")
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise TemplateLimitError(f"the template file {filename} is not UTF-8 text ({err.reason})") from None
        mtime = os.path.getmtime(filename)
        return source, os.path.normpath(filename), lambda: _unchanged(filename, mtime)


def _unchanged(filename: str, mtime: float) -> bool:
    try:
        return os.path.getmtime(filename) == mtime
    except OSError:
        return False


class _UserEnvironment(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The immutable sandbox with numbers, strings, loops and calls bounded."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "//", "%", "+"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)
        self.bounded_join = _bounded_join

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (_too_large(left, 10**6) or _too_large(right, 64)):
            raise TemplateLimitError(f"{left!r:.40} ** {right!r:.40} is out of range for a template")
        if operator == "*" and any(isinstance(v, (str, list, tuple)) for v in (left, right)):
            count = right if isinstance(left, (str, list, tuple)) else left
            sequence = left if isinstance(left, (str, list, tuple)) else right
            if isinstance(count, int) and len(sequence) * max(count, 0) > MAX_OUTPUT:
                raise TemplateLimitError(f"'*' makes a value longer than {MAX_OUTPUT} items")
        _bounded_arguments((left, right), {}, f"'{operator}'")
        if operator == "%":
            _bounded_format(left, "'%'")
        return _bounded_size(super().call_binop(context, operator, left, right), f"'{operator}'")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:  # "...".format: its fields' widths bounded like numbers
            _bounded_format(value.__self__, "format")
        return wrapped

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        _bounded_arguments(args, kwargs, "a call")
        if isinstance(getattr(__obj, "__self__", None), str) and getattr(__obj, "__name__", "") in ("replace", "join",
                                                                                                   "expandtabs"):
            _bounded_method(__obj.__self__, __obj.__name__, args)
        return _bounded_size(super().call(__context, __obj, *args, **kwargs), "a call")


def _bounded_method(text: str, name: str, args: tuple) -> None:
    """``str.replace``, ``str.join`` and ``str.expandtabs`` refused before they make a string too long."""
    if name == "replace" and len(args) >= 2:
        _bounded_replace(text, *args[:2], what="replace")
    elif name == "join" and args and isinstance(args[0], (list, tuple)):
        if sum(len(str(item)) for item in args[0]) + len(text) * len(args[0]) > MAX_OUTPUT:
            raise TemplateLimitError(f"join makes a string longer than {MAX_OUTPUT} characters")
    elif name == "expandtabs" and (text.count("\t") + 1) * (args[0] if args and isinstance(args[0], int) else 8) \
            > MAX_OUTPUT:
        raise TemplateLimitError(f"expandtabs makes a string longer than {MAX_OUTPUT} characters")


def _too_large(value: Any, bound: float) -> bool:
    try:
        return not isinstance(value, (int, float)) or abs(value) > bound
    except (TypeError, OverflowError):
        return True


def user_environment(*folders: str | Path, filters: Mapping[str, Callable] | None = None) -> jinja2.Environment:
    """An immutable sandbox over ``folders`` and symbackprop's templates, for templates from a user.

    Like :func:`environment` otherwise; ``filters`` (a renderer's own) are added,
    and every filter has its whole-number arguments and its result bounded.
    """
    env = _UserEnvironment(
        loader=_BoundedLoader([str(folder) for folder in (*folders, template_folder())]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(filters or {})
    env.filters = {name: _bounded_filter(function, name) for name, function in env.filters.items()}
    return env


class _Steps:
    """A trace function counting the lines a template runs and the Python calls made while it renders."""

    def __init__(self, env: jinja2.Environment, limit: int) -> None:
        self.env = env
        self.left = limit

    def _spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise TemplateLimitError(f"the template takes more than {MAX_STEPS} steps")

    def __call__(self, frame, event: str, arg: Any):
        self._spend()
        if frame.f_globals.get("environment") is self.env:  # the template's code
            for value in frame.f_locals.values():  # a macro's arguments
                _bounded_size(value, "a macro")
        return self._line

    def _line(self, frame, event: str, arg: Any):
        self._spend()
        return self._line


def render(env: jinja2.Environment, template: str, context: Mapping[str, Any], *,
           from_string: bool = False) -> str:
    """``template`` (a name, or the source itself with ``from_string``) rendered with ``context``.

    In a :func:`user_environment` the rendering is bounded: at most
    :data:`MAX_STEPS` steps and :data:`MAX_OUTPUT` characters, refused with a
    :class:`~symbackprop.errors.NotationError` as soon as it goes beyond.
    Every template error is a ``NotationError`` naming the template and line.
    """
    sandboxed = isinstance(env, _UserEnvironment)
    previous = sys.gettrace()
    name = "<template>" if from_string else template
    try:
        compiled = env.from_string(template) if from_string else env.get_template(template)
        if not sandboxed:
            return compiled.render(context)
        pieces, size = [], 0
        sys.settrace(_Steps(env, MAX_STEPS))
        try:
            for piece in compiled.generate(context):
                size += len(piece)
                if size > MAX_OUTPUT:
                    raise TemplateLimitError(f"the template writes more than {MAX_OUTPUT} characters")
                pieces.append(piece)
        finally:
            sys.settrace(previous)
        return "".join(pieces)
    except jinja2.TemplateError as err:
        where = f" (line {err.lineno})" if getattr(err, "lineno", None) else ""
        message = getattr(err, "message", None) or str(err)
        raise NotationError(f"template {getattr(err, 'name', None) or name}{where}: {message}") from None
    except (MemoryError, RecursionError, OverflowError, ArithmeticError, TypeError, ValueError) as err:
        if not sandboxed:
            raise
        raise NotationError(f"template {name}: {type(err).__name__}: {err}"[:300]) from None

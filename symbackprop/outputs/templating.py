"""Jinja2 templates: one environment for every renderer, and where the templates live.

Templates hold layout only; renderers give them printed strings.  They ship
inside the package as ``symbackprop.templates`` (the top-level ``templates/``
folder of the source tree, mapped in ``pyproject.toml``); running from a source
tree without installing, the folder is found next to the package.

>>> env = environment()
>>> env.from_string("{{ name }} = {{ value }}").render(name="z1", value="W1 @ X")
'z1 = W1 @ X'
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import jinja2

__all__ = ["environment", "template_folder"]


def template_folder() -> Path:
    """The folder holding symbackprop's own templates."""
    try:
        folder = Path(str(importlib.resources.files("symbackprop.templates")))
    except ModuleNotFoundError:  # a source tree on sys.path, not installed
        folder = Path(__file__).resolve().parents[2] / "templates"
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

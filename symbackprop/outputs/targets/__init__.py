"""Code targets: one statement plan (:mod:`.plan`), printed by each engine's printer and template.

:func:`source` writes a target's code for a derivation; :func:`compile` runs
a Python target in this process.  The targets are ``numpy``, ``torch``,
``jax`` and ``octave``.

>>> from symbackprop import Dense, Network, derive
>>> source(derive(Network(1, [Dense(1, bias=False)])), "fortran")
Traceback (most recent call last):
...
symbackprop.errors.SpecError: unknown code target 'fortran'; the targets are numpy, torch, jax, octave
"""

from __future__ import annotations

import importlib

from ...errors import SpecError

__all__ = ["TARGETS", "source", "compile"]

#: target → (module of its generator, what to install to run its code)
TARGETS = {
    "numpy": ("symbackprop.outputs.codegen", "numpy"),
    "torch": ("symbackprop.outputs.targets.torch", "torch"),
    "jax": ("symbackprop.outputs.targets.jax", "jax"),
    "octave": ("symbackprop.outputs.targets.octave", "GNU Octave (apt-get install octave)"),
}
#: the file name extension of each target's code
EXTENSIONS = {"numpy": ".py", "torch": ".py", "jax": ".py", "octave": ".m"}


def _module(target: str):
    if not isinstance(target, str) or target not in TARGETS:
        raise SpecError(f"unknown code target {target!r}; the targets are {', '.join(TARGETS)}")
    return importlib.import_module(TARGETS[target][0])


def _supported(derivation, target: str) -> None:
    """Dropout masks and embedding ids are NumPy's for now: another target refuses them clearly."""
    if target == "numpy":
        return
    program = getattr(derivation, "program", None)
    for item in getattr(program, "inputs", ()):
        if item.kind != "real":
            what = "a dropout mask" if item.kind == "mask" else "an embedding's one-hot input (or ids)"
            raise SpecError(f"the {target} target does not take {what} yet ({item.name}); generate NumPy code "
                            f"(--code numpy) for this network")


def source(derivation, target: str = "numpy") -> str:
    """The text of ``target``'s code for ``derivation`` (byte-identical for the same input)."""
    module = _module(target)
    _supported(derivation, target)
    return module.module_source(derivation)


def compile(derivation, target: str = "numpy"):  # noqa: A001 - the targets' verb
    """``target``'s generated functions, run in this process (NumPy, PyTorch or JAX)."""
    module = _module(target)
    _supported(derivation, target)
    if target == "numpy":
        return module.compile_numpy(derivation)
    if target == "octave":
        raise SpecError("Octave code runs in Octave: write it with source(derivation, 'octave') and run octave-cli")
    return getattr(module, f"compile_{target}")(derivation)

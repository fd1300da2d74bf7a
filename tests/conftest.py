"""Fixtures shared by the test files."""

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def pdflatex() -> str:
    """The pdflatex program; missing, the test skips locally and fails in CI (.ci/run installs it)."""
    found = shutil.which("pdflatex")
    if found is None:
        reason = "pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must install it (.ci/run does)")
        pytest.skip(reason)
    return found

"""The README stays true: its set-up commands match CI, its examples print what they say."""

import contextlib
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_names_exactly_two_setup_commands_and_ci_runs_the_test_one():
    setup = [block.strip() for block in _blocks("sh")]
    assert len(setup) == 2
    install_and_run, install_and_test = setup
    assert "symbackprop derive examples/" in install_and_run
    test_command = install_and_test.split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines(), f"CI must run the README's test command {test_command!r}"


def test_readme_main_job_command_runs_on_the_bundled_example():
    command = _blocks("sh")[0].split("&&")[-1].strip()
    args = shlex.split(command)[1:]
    result = subprocess.run([sys.executable, "-m", "symbackprop", *args], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    assert "∂C/∂W⁽¹⁾ = δ⁽¹⁾ Xᵀ" in result.stdout
    for line in _blocks("text")[-1].strip().splitlines():
        assert line.rstrip() in result.stdout.splitlines(), line


def test_readme_python_tour_prints_what_its_comments_say():
    (code,) = _blocks("python")
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), {})
    expected = [line.split("# ")[1].split(":")[0].strip() for line in code.splitlines() if line.startswith("print(")]
    assert output.getvalue().splitlines() == expected

"""Every code block in README.md and docs/*.md runs, and prints what the page says it prints.

How the Markdown is read (write the docs so that this test can run them):

* Every fenced block names its language. ``python`` blocks run in page order,
  one namespace per page. ``sh`` blocks (also ``console``, ``shell``, ``bash``)
  are commands, one a line (``\\`` continues a line, ``&&`` chains, ``#`` starts
  a comment, a leading ``$ `` is dropped):

  - ``symbackprop …`` and ``python -m symbackprop …`` run through
    ``symbackprop.cli.main`` in this process;
  - ``cat FILE`` prints the file;
  - installs (``pip …``, ``python3 -m pip …``), the test suite
    (``python3 -m pytest …``, with or without ``VAR=value`` in front), the
    benchmarks (``python benchmarks/…``), the scaling examples (``python
    examples/distributed_torch.py …``, ``python examples/sharded_jax.py …``,
    which tests/test_distributed.py runs), the image script
    (``python docs/images/regenerate.py``) and ``pdflatex`` are skipped: CI,
    tests/test_latex.py and their own runs cover them;
  - anything else fails the test, so that no command is silently left unrun.

* **Expected output.** A ``text`` block, or a block whose info string ends in
  ``output`` (```` ```python output ````, ```` ```toml output ````), that comes
  right after a ``python`` or ``sh`` block (nothing but blank lines between)
  must equal what that block printed (stdout and stderr, in order). Lines are
  compared with trailing whitespace stripped, and leading and trailing blank
  lines ignored; a line that is just ``...`` stands for any number of lines.
  A ``sh`` block without an expected output must exit with status 0.

* **Transcripts.** A ``text`` or ``console`` block whose first line starts with
  ``$ `` is a transcript: each ``$ `` line is a command as above, and the lines
  up to the next ``$ `` line are its expected output (``...`` allowed).

* **Files.** A block whose info string has ``file=NAME`` (```` ```toml file=net.toml ````)
  is written to ``NAME`` in the page's folder (see below), for the commands
  after it to read. It must still be valid in its language, but a ``toml``
  file need not be a valid spec: pages show what symbackprop says about bad ones.

* Other ``text`` blocks are illustrations and are not run. ``matlab`` blocks
  are quoted from elsewhere and not run. ``toml`` blocks must parse, and one
  with a ``[network]`` table must be a valid spec; ``latex`` and ``tex`` blocks
  must balance their braces and environments; ``json`` blocks must parse.

* **Where blocks run.** Each page runs in its own fresh temporary folder that
  holds a copy of ``examples/``: paths such as ``examples/seed.toml`` read as
  they do from the repository root, and whatever a block writes (``seed.tex``,
  ``seed.png``) lands in the temporary folder, never in the repository.

* Relative links and images in the pages must point at files that exist, and
  ``docs/api.md`` must document every name in ``symbackprop.__all__``.

A failure names the page and the line of the block, and shows a diff.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import re
import shlex
import shutil
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

import symbackprop
from symbackprop.cli import main
from symbackprop.spec import parse_spec

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SHELL = {"sh", "console", "shell", "bash"}
NOT_RUN = {"text", "matlab"}
CHECKED = {"python", "toml", "latex", "tex", "json"} | SHELL | NOT_RUN

FENCE = re.compile(r"^```(.*)$")


@dataclass
class Block:
    info: str  # the fence's info string: "python", "text", "toml output"
    code: str
    line: int  # 1-based line of the opening fence
    follows_block: bool  # nothing but blank lines between this block and the one before

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info else ""

    @property
    def file(self) -> str | None:
        names = [word[5:] for word in self.info.split()[1:] if word.startswith("file=")]
        return names[0] if names else None

    @property
    def is_output(self) -> bool:
        return self.info == "text" or (len(self.info.split()) > 1 and self.info.split()[-1] == "output")

    @property
    def is_transcript(self) -> bool:
        return self.language in {"text", "console"} and self.code.lstrip("\n").startswith("$ ")


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, in order."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index, last_end = 0, None
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        start = index
        index += 1
        while index < len(lines) and lines[index].rstrip() != "```":
            index += 1
        if index == len(lines):
            raise AssertionError(f"{_name(path)}:{start + 1}: a code block is never closed")
        between = lines[last_end + 1:start] if last_end is not None else ["x"]
        found.append(Block(match.group(1).strip(), "\n".join(lines[start + 1:index]), start + 1,
                           all(not line.strip() for line in between)))
        last_end = index
        index += 1
    return found


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- comparing output ------------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` equals ``actual``, where a line ``...`` stands for any number of lines."""
    if not expected:
        return not actual
    if expected[0].strip() == "...":
        return any(matches(expected[1:], actual[skip:]) for skip in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and matches(expected[1:], actual[1:])


def _compare(where: str, expected_text: str, actual_text: str) -> None:
    expected, actual = _lines(expected_text), _lines(actual_text)
    if not matches(expected, actual):
        diff = "\n".join(difflib.unified_diff(expected, actual, "the page says", "the code printed", lineterm=""))
        pytest.fail(f"{where}: the output differs from the page\n{diff}", pytrace=False)


def test_matches_understands_elisions():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["a", "...", "b"], ["a", "b"])
    assert not matches(["a", "...", "d"], ["a", "b", "c"])
    assert not matches(["a"], ["a", "b"])


# --- running commands ------------------------------------------------------------------------------

SKIPPED = (
    re.compile(r"^(python3?\s+-m\s+)?pip3?\s"),  # installation: CI runs it
    re.compile(r"^python3?\s+-m\s+pytest(\s|$)"),  # the test suite itself
    re.compile(r"^python3?\s+benchmarks/"),  # timings, machine-dependent
    re.compile(r"^python3?\s+examples/(distributed_torch|sharded_jax)\.py(\s|$)"),  # tests/test_distributed.py
    re.compile(r"^python3?\s+docs/images/regenerate\.py$"),  # needs pdflatex; writes into the repository
    re.compile(r"^pdflatex\s"),  # TeX itself; tests/test_latex.py compiles symbackprop's documents
)


def commands(code: str) -> list[str]:
    """The commands of a shell block: continuations joined, comments and ``$ `` prompts dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        line = line.removeprefix("$ ")
        if line and not line.startswith("#"):
            found.append(line)
    return found


def _words(command: str) -> list[list[str]]:
    """A command line split into words, and into the commands that ``&&`` chains."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    chained: list[list[str]] = [[]]
    for token in lexer:
        if token == "&&":
            chained.append([])
        elif token and set(token) <= set("();<>|&"):
            raise ValueError(f"unsupported shell syntax {token!r}")
        else:
            chained[-1].append(token)
    return chained


def run_command(command: str) -> tuple[str, int]:
    """Run one line of a shell block; returns what it printed and its exit status."""
    printed, status = [], 0
    for words in _words(command):
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words = words[1:]  # VAR=value before a skipped command
        text = " ".join(words)
        if any(pattern.match(text) for pattern in SKIPPED):
            continue
        if words[:1] == ["symbackprop"]:
            arguments = words[1:]
        elif words[:3] in (["python", "-m", "symbackprop"], ["python3", "-m", "symbackprop"]):
            arguments = words[3:]
        elif words[:1] == ["cat"] and len(words) == 2:
            printed.append(Path(words[1]).read_text(encoding="utf-8"))
            continue
        else:
            raise ValueError(f"the docs test does not know how to run {text!r}")
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                status = main(arguments)
            except SystemExit as exit_:  # argparse: --help, usage errors
                status = exit_.code if isinstance(exit_.code, int) else 2
        printed.append(output.getvalue())
        if status != 0:
            break
    return "".join(printed), status


# --- checking the other languages ------------------------------------------------------------------

def _check_toml(where: str, code: str, spec: bool = True) -> None:
    try:
        data = tomllib.loads(code)
    except tomllib.TOMLDecodeError as err:
        problem = f"does not parse: {err}"
    else:
        try:
            problem = None
            if spec and "network" in data:
                parse_spec(data, "the block")
        except symbackprop.SymbackpropError as err:
            problem = f"is not a valid spec: {err}"
    if problem is not None:
        pytest.fail(f"{where}: the toml block {problem}", pytrace=False)


def _check_latex(where: str, code: str) -> None:
    depth = 0
    for character in re.sub(r"\\[{}]", "", code):
        depth += {"{": 1, "}": -1}.get(character, 0)
        if depth < 0:
            pytest.fail(f"{where}: the latex block closes a brace it never opened", pytrace=False)
    if depth:
        pytest.fail(f"{where}: the latex block leaves {depth} brace(s) open", pytrace=False)
    environments: list[str] = []
    for kind, name in re.findall(r"\\(begin|end)\{([^}]*)\}", code):
        if kind == "begin":
            environments.append(name)
        elif not environments or environments.pop() != name:
            pytest.fail(f"{where}: the latex block has \\end{{{name}}} without its \\begin", pytrace=False)
    if environments:
        pytest.fail(f"{where}: the latex block never ends {environments}", pytrace=False)


# --- the test --------------------------------------------------------------------------------------

def _run_python(where: str, path: Path, block: Block, namespace: dict) -> str:
    source = "\n" * block.line + block.code  # line numbers in tracebacks are the page's
    output, error = io.StringIO(), None
    try:
        with contextlib.redirect_stdout(output):
            exec(compile(source, str(path), "exec"), namespace)  # noqa: S102 - the docs are ours
    except Exception as exc:  # noqa: BLE001 - any failure of a docs example is reported with its page line
        error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))
    if error is not None:
        pytest.fail(f"{where}: the python block raised\n{error}", pytrace=False)
    return output.getvalue()


def _run_shell(where: str, block: Block) -> tuple[str, int]:
    printed, status = [], 0
    for command in commands(block.code):
        try:
            output, status = run_command(command)
        except (ValueError, OSError) as err:
            pytest.fail(f"{where}: {command!r}: {err}", pytrace=False)
        printed.append(output)
        if status != 0:
            break
    return "".join(printed), status


def _run_transcript(where: str, block: Block) -> None:
    command, expected = None, []
    for line in [*block.code.splitlines(), "$ "]:
        if line.startswith("$ "):
            if command is not None:
                try:
                    output, _ = run_command(command)
                except (ValueError, OSError) as err:
                    pytest.fail(f"{where}: {command!r}: {err}", pytrace=False)
                _compare(f"{where}: $ {command}", "\n".join(expected), output)
            command, expected = line[2:].strip(), []
        else:
            expected.append(line)


@pytest.mark.parametrize("path", PAGES, ids=_name)
def test_every_code_block_runs_and_prints_what_the_page_says(path, tmp_path, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps --help to the terminal's width
    namespace: dict = {"__name__": "__docs__"}
    previous: tuple[Block, str, int] | None = None  # the last block run, what it printed, its status
    for block in blocks(path):
        where = f"{_name(path)}:{block.line}"
        if block.language not in CHECKED:
            pytest.fail(f"{where}: give the block one of the languages {sorted(CHECKED)} "
                        f"(or end its info string with 'output'), not {block.info!r}", pytrace=False)
        if previous is not None and block.follows_block and block.is_output and not block.is_transcript:
            ran, printed, _ = previous
            _compare(f"{where} (the output of the block at line {ran.line})", block.code, printed)
            previous = None
            continue
        if previous is not None and previous[0].language in SHELL and previous[2] != 0:
            ran, printed, status = previous
            pytest.fail(f"{_name(path)}:{ran.line}: the command exited with status {status}\n{printed}",
                        pytrace=False)
        previous = None
        if block.is_output and block.language != "text":
            pytest.fail(f"{where}: an output block must come right after the block it is the output of",
                        pytrace=False)
        if block.file is not None:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", block.file) or block.file.startswith("."):
                pytest.fail(f"{where}: file={block.file!r}: give a plain file name", pytrace=False)
            (tmp_path / block.file).write_text(block.code + "\n", encoding="utf-8")
        if block.language == "python":
            previous = (block, _run_python(where, path, block, namespace), 0)
        elif block.language in SHELL and not block.is_transcript:
            previous = (block, *_run_shell(where, block))
        elif block.is_transcript:
            _run_transcript(where, block)
        elif block.language == "toml":
            _check_toml(where, block.code, spec=block.file is None)
        elif block.language in ("latex", "tex"):
            _check_latex(where, block.code)
        elif block.language == "json":
            try:
                json.loads(block.code)
            except json.JSONDecodeError as err:
                pytest.fail(f"{where}: the json block does not parse: {err}", pytrace=False)
    if previous is not None and previous[0].language in SHELL and previous[2] != 0:
        ran, printed, status = previous
        pytest.fail(f"{_name(path)}:{ran.line}: the command exited with status {status}\n{printed}", pytrace=False)


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _without_code(path: Path) -> str:
    return re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)


def anchors(path: Path) -> set[str]:
    """The anchors GitHub makes for a page's headings: lower case, punctuation dropped, spaces as '-'."""
    found: set[str] = set()
    for heading in re.findall(r"^#+ (.*)$", _without_code(path), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        number, unique = 0, slug
        while unique in found:  # GitHub numbers repeated headings
            number += 1
            unique = f"{slug}-{number}"
        found.add(unique)
    return found


@pytest.mark.parametrize("path", PAGES, ids=_name)
def test_relative_links_and_images_point_at_files_and_headings_that_exist(path):
    for target in LINK.findall(_without_code(path)):
        if re.match(r"^[a-z]+:", target):
            continue
        name, _, anchor = target.partition("#")
        file = (path.parent / name).resolve() if name else path
        assert file.exists(), f"{_name(path)}: the link {target!r} points at a missing file"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{_name(path)}: the link {target!r} points at a missing heading"


def test_images_in_the_docs_are_small():
    for image in (ROOT / "docs").rglob("*.png"):
        assert image.stat().st_size < 200_000, f"{_name(image)} is {image.stat().st_size} bytes; crop it"


def test_the_api_reference_documents_every_public_name():
    reference = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    headings = {name for line in re.findall(r"^#+ .*$", reference, flags=re.MULTILINE)
                for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_.]*)`", line)}
    missing = [name for name in symbackprop.__all__ if name not in headings]
    assert not missing, f"docs/api.md has no heading for {missing}"

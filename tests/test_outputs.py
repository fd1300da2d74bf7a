"""Output paths: each option names a file that can be written, every file is written or none, standard output
is written whole or reported, and nothing is left behind."""

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from symbackprop.errors import OutputError
from symbackprop.cli import main
from symbackprop.outputs import files
from symbackprop.outputs.documents import write_output

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "examples" / "seed.toml")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("option", ["--latex", "--markdown", "--numpy"])
def test_an_empty_file_name_is_refused(capsys, option):
    code, out, err = run(capsys, "derive", SEED, option, "")
    assert (code, out) == (2, "")
    assert err == f"error: {option} needs a file name, not '' (hint: {option} FILE, or {option} - for standard output)\n"


def test_a_name_that_ends_in_a_slash_names_a_folder(tmp_path, capsys):
    code, _, err = run(capsys, "derive", SEED, "--latex", f"{tmp_path}/out.tex/")
    assert code == 2 and "the name ends in a separator, so it names a folder, not a file" in err
    assert list(tmp_path.iterdir()) == []


def test_a_file_name_too_long_says_so(tmp_path, capsys):
    code, _, err = run(capsys, "derive", SEED, "--numpy", str(tmp_path / ("k" * 300 + ".py")))
    assert code == 2 and "File name too long" in err and "standard output" not in err
    assert list(tmp_path.iterdir()) == []


def test_every_output_is_checked_before_any_is_written(tmp_path, capsys):
    (tmp_path / "k.py").write_text("old code")
    (tmp_path / "k.tex").write_text("old tex")
    code, _, err = run(capsys, "derive", SEED, "--numpy", str(tmp_path / "k.py"), "--latex", str(tmp_path / "k.tex"),
                       "--markdown", str(tmp_path / "nope" / "x.md"))
    assert code == 2 and err.endswith("nope/x.md': No such file or directory\n")
    assert (tmp_path / "k.py").read_text() == "old code" and (tmp_path / "k.tex").read_text() == "old tex"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.py", "k.tex"]


def test_a_failure_while_writing_leaves_every_file_as_it_was(tmp_path, monkeypatch):
    (tmp_path / "a.tex").write_text("old")
    real = os.replace
    calls = []

    def second_fails(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(source, target)

    monkeypatch.setattr(files.os, "replace", second_fails)
    with pytest.raises(OutputError, match="No space left on device"):
        files.write_outputs([("new", tmp_path / "a.tex"), ("b", tmp_path / "b.md")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tex"]  # no temporary file


def test_ctrl_c_during_a_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.shutil, "copymode", interrupted)
    (tmp_path / "out.tex").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        write_output("new", tmp_path / "out.tex")
    assert [p.name for p in tmp_path.iterdir()] == ["out.tex"] and (tmp_path / "out.tex").read_text() == "old"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_device_that_cannot_be_written_is_an_error(capsys):
    code, _, err = run(capsys, "derive", SEED, "--latex", "/dev/full")
    assert code == 2 and err == "error: cannot write '/dev/full': No space left on device\n"


def _limit_files_to_1000_bytes():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))


def test_in_a_real_process_standard_output_that_takes_part_of_the_text_is_an_error(tmp_path):
    """A disk that fills after 1000 bytes: Python's buffered stdout accepts the short write; the command must not."""
    with open(tmp_path / "out.txt", "w") as handle:
        result = subprocess.run([sys.executable, "-m", "symbackprop", "derive", SEED, "--numpy", "-"], stdout=handle,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=60,
                                preexec_fn=_limit_files_to_1000_bytes)
    assert (tmp_path / "out.txt").stat().st_size == 1000
    assert (result.returncode, result.stderr) == (2, "error: cannot write to standard output: File too large\n")


@pytest.mark.parametrize("argv", [["derive", SEED], ["derive", SEED, "--format", "json"], ["derive", "--help"],
                                  ["check", SEED, "W1", "2 * x * (W1 * x - y)"], ["derive", SEED, "--latex", "-"]])
def test_standard_output_that_takes_only_part_of_the_text_is_an_error(tmp_path, monkeypatch, capsys, argv):
    stdout = open(tmp_path / "out.txt", "w", encoding="utf-8")
    descriptor, real_write, room = stdout.fileno(), os.write, [100]

    def disk_fills_after_100_bytes(fd, data):
        if fd != descriptor:
            return real_write(fd, data)
        if not room[0]:
            raise OSError(28, "No space left on device")
        written = real_write(fd, bytes(data[:room[0]]))
        room[0] -= written
        return written

    monkeypatch.setattr(os, "write", disk_fills_after_100_bytes)
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        code = main(argv)
    finally:
        monkeypatch.undo()
        stdout.close()
    assert (tmp_path / "out.txt").stat().st_size == 100
    assert code == 2 and "cannot write to standard output: No space left on device" in capsys.readouterr().err


# --- --plot ------------------------------------------------------------------------------------------


@pytest.fixture
def matplotlib():
    return pytest.importorskip("matplotlib")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_plot_that_cannot_be_written_is_an_error(matplotlib, capsys):
    code, _, err = run(capsys, "train", SEED, "--plot", "/dev/full", "--steps", "2")
    assert code == 2 and err == "error: --plot: cannot write '/dev/full': No space left on device\n"


def test_a_plot_into_a_folder_is_refused_before_training(tmp_path, capsys):
    code, out, err = run(capsys, "train", SEED, "--plot", str(tmp_path))
    assert (code, out) == (2, "") and err == f"error: --plot: cannot write {str(tmp_path)!r}: it is a folder\n"
    assert list(tmp_path.iterdir()) == [] and not Path(f"{tmp_path}.png").exists()


@pytest.mark.parametrize("name, message", [
    ("", "error: --plot needs a file name, not '' (hint: --plot FILE.png)\n"),
    ("costs", "the name must end in .png, .pdf or .svg (hint: --plot costs.png)\n"),
    ("costs.jpeg", "the name must end in .png, .pdf or .svg\n"),
])
def test_a_plot_needs_a_name_that_says_its_format(tmp_path, monkeypatch, capsys, name, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "train", SEED, "--plot", name)
    assert (code, out) == (2, "") and err.endswith(message)
    assert list(tmp_path.iterdir()) == []


def test_a_plot_is_written_whole_in_the_format_its_name_says(matplotlib, tmp_path, capsys):
    assert main(["train", SEED, "--steps", "2", "--plot", str(tmp_path / "p.svg")]) == 0
    assert b"<svg" in (tmp_path / "p.svg").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["p.svg"]

"""Input that would take forever (huge constants, endless spec files) is refused at once, in one line."""

import time
from pathlib import Path

import pytest

from symbackprop import SpecError
from symbackprop.cli import main
from symbackprop.language.scalar import MAX_DIGITS
from symbackprop.model.activations import custom_activation
from symbackprop.spec import MAX_SPEC_BYTES, read_spec


def spec_file(tmp_path: Path, activation: str) -> str:
    path = tmp_path / "net.toml"
    path.write_text(f'[network]\ninputs = 1\n[[layers]]\nunits = 1\nactivation = "{activation}"\n')
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str]:
    start = time.monotonic()
    code = main(list(argv))
    assert time.monotonic() - start < 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return code, err


@pytest.mark.parametrize("formula", ["(((((9**64)**64)**64)**64)**64)", "(9^64)^64", "(1e300)**64*x",
                                     "x*(1e300)**2", "(1e10*x)**64", "1e300*1e300*x", "1e-300*1e-300*x",
                                     "1e300*x*1e9", "(x + 1e300)*1e300"])
def test_constants_beyond_float64_are_refused_before_they_are_computed(tmp_path, capsys, formula):
    code, err = run(capsys, "derive", spec_file(tmp_path, formula), "--numpy", str(tmp_path / "out.py"))
    assert code == 2
    assert err.startswith(f"error: {tmp_path / 'net.toml'}: [[layers]] #1: custom activation {formula!r}: ")
    assert "out of range" in err
    assert not (tmp_path / "out.py").exists()


def test_constants_within_float64_are_kept_exactly():
    assert str(custom_activation("(2*x)**64 + 9e300").definition) == f"18446744073709551616*x**64 + 9{'0' * 300}"
    assert custom_activation("1e-300*x/1e8").definition.as_coeff_Mul()[0].q == 10**308
    with pytest.raises(SpecError, match=f"more than {MAX_DIGITS + 1} digits"):
        custom_activation("1e-300*x/1e9")


def test_a_spec_file_larger_than_any_spec_is_refused_unread(tmp_path, capsys):
    code, err = run(capsys, "derive", "/dev/zero")
    assert code == 2
    assert err == "error: /dev/zero: not a spec file: it is larger than 1 MiB (a spec file is a few hundred bytes)\n"
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * MAX_SPEC_BYTES + "\n")
    with pytest.raises(SpecError, match="larger than 1 MiB"):
        read_spec(big)
    fits = tmp_path / "fits.toml"
    fits.write_text(f'[network]\ninputs = 1\n[[layers]]\nunits = 1\n# {"x" * (MAX_SPEC_BYTES - 60)}\n')
    assert read_spec(fits).model.inputs == 1


@pytest.mark.parametrize("formula", ["exp((log(x))+(exp(9e300)))", "exp(710)*x", "exp(700)*exp(700)*x",
                                     "exp(exp(exp(5)))*x", "x + cosh(1e300)"])
def test_constant_expressions_beyond_float64_are_refused(tmp_path, capsys, formula):
    code, err = run(capsys, "derive", spec_file(tmp_path, formula), "--latex", str(tmp_path / "out.tex"))
    assert code == 2 and "is beyond float64's range" in err


def test_constant_expressions_within_float64_are_kept():
    assert str(custom_activation("exp(700)*x + exp(-1000) + sin(1e300)").definition).startswith("x*exp(700) + ")


@pytest.mark.parametrize("line", ["weight_decay = 99999999999999999999", "batch = 99999999999999999999",
                                  "inputs = -99999999999999999999"])
def test_integers_beyond_64_bits_are_refused_as_toml_says(tmp_path, capsys, line):
    path = tmp_path / "net.toml"
    path.write_text(f"[network]\ninputs = 1\n{line}\n[[layers]]\nunits = 1\n".replace("inputs = 1\ninputs", "inputs"))
    code, err = run(capsys, "check", str(path), "W1", "delta1 @ X.T")
    key = line.split(" = ")[0]
    assert code == 2 and f"net.toml: [network].{key}: the integer " in err and "a TOML integer has 64 bits" in err


def test_an_integer_beyond_64_bits_is_named_where_it_is(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text("[network]\ninputs = 1\n[[layers]]\nunits = 1\n[[layers]]\nunits = 18446744073709551616\n")
    with pytest.raises(SpecError, match=r"net.toml: \[\[layers\]\] #2.units: the integer 18446744073709551616 is out"):
        read_spec(path)

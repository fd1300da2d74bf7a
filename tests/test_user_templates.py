"""A user's templates (template_dir) render in a bounded sandbox: no code runs, no internals show, nothing hangs."""

import time
from pathlib import Path

import pytest

from symbackprop import Dense, Network, NotationError, derive
from symbackprop.cli import main
from symbackprop.outputs import templating

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "examples" / "seed.toml")


def folder_with(tmp_path: Path, source: str, name: str = "derivation.tex.j2") -> Path:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(source)
    return folder


def refused(tmp_path, source: str, message: str, seconds: float = 3.0) -> None:
    folder = folder_with(tmp_path, source)
    start = time.monotonic()
    with pytest.raises(NotationError, match=message):
        derive(Network(1, [Dense(1)])).latex(template_dir=folder)
    assert time.monotonic() - start < seconds


def test_a_template_cannot_run_code_through_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = folder_with(tmp_path, "{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}")
    code = main(["derive", SEED, "--latex", "-", "--notation", f"template_dir={folder}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: template derivation.tex.j2") and "unsafe" in err and err.count("\n") == 1
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("source", ["{{ ''.__class__.__mro__ }}", "{{ gradients.__class__ }}",
                                    "{{ network.__init__ }}", "{% set x = [] %}{{ x.append(1) }}"])
def test_a_template_sees_no_internals_and_changes_nothing(tmp_path, source):
    refused(tmp_path, source, "unsafe|cannot modify|is undefined")


@pytest.mark.parametrize("source, message", [
    ("{% for i in range(10**9) %}x{% endfor %}", "whole numbers up to"),
    ("{% for i in range(100000) %}{% endfor %}", "range gives 100000 numbers"),
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "more than 200000 steps"),
    ("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}", "steps"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
    ("{% for i in range(10000) %}{{ 'x' * 1000000 }}{% endfor %}",
     "writes more than"),
    ("{{ 'a' * 10**9 }}", "longer than"),
    ("{{ 9**9**9 }}", "out of range"),
    ("{{ 'a'|center(10**9) }}", "the filter center is given the number 1000000000"),
    ("{{ '%*d' % (10**9, 1) }}", "whole numbers up to"),
    ("{{ '{:>1000000000}'.format(1) }}", "width or precision of millions"),
    ("{{ lipsum(1000000) }}", "'lipsum' is undefined"),
    ("{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "'~'"),
    ("{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n-1) }}{% endif %}{% endmacro %}{{ d('a', 60) }}", "'~'"),
    ("{% set s = 'a' * 1000000 %}{{ s|replace('a', s) }}", "the filter replace makes"),
    ("{{ ('a' * 1000000).replace('a', 'aaaaa') }}", "replace makes"),
    ("{{ (['a' * 4000000] * 1000)|join('') }}", "join makes"),
])
def test_every_loop_number_string_and_the_output_are_bounded(tmp_path, monkeypatch, source, message):
    monkeypatch.setattr(templating, "MAX_STEPS", 200_000)  # the bound's value is checked below; here, speed
    refused(tmp_path, source, message)


def test_a_rendering_has_a_step_budget_well_above_a_deep_network(tmp_path):
    refused(tmp_path, "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "the template takes more than 1000000 steps")


def test_a_huge_template_file_is_refused_unread(tmp_path):
    refused(tmp_path, "x" * (templating.MAX_TEMPLATE_FILE + 1), "larger than")


def test_the_bundled_templates_and_filters_render_the_same_in_the_sandbox(tmp_path):
    d = derive(Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2", "sigmoid")], batch="m"))
    empty = tmp_path / "empty"
    empty.mkdir()  # every template found in symbackprop's own folder, but rendered in the sandbox
    assert d.latex(standalone=True, template_dir=empty) == d.latex(standalone=True)
    assert d.markdown(template_dir=empty) == d.markdown()
    copy = folder_with(tmp_path, "{{ gradients.equations | align }}\n{{ shapes | cells }}\n"
                                 "{{ deltas.equations | aligned }}")
    text = d.latex(template_dir=copy)
    assert r"\begin{align*}" in text and r"\delta^{(2)}" in text


def test_ordinary_template_code_works(tmp_path):
    folder = folder_with(tmp_path, "{% for e in gradients.equations %}{{ loop.index }}: {{ e.lhs|upper }} "
                                   "{{ '%d' % 3 }} {{ '{:>3}'.format(7) }} {{ ['a', 'b']|join(',') }}{% endfor %}")
    text = derive(Network(1, [Dense(1, bias=False)])).latex(template_dir=folder)
    assert text == r"1: \FRAC{\PARTIAL C}{\PARTIAL W^{(1)}} 3   7 a,b"


def test_the_bundled_templates_are_those_of_the_tree_the_package_comes_from():
    import symbackprop

    assert templating.template_folder() == Path(symbackprop.__file__).resolve().parents[1] / "templates"

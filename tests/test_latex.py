"""LaTeX and Markdown rendering: the printer's notation, the document, golden files, pdflatex.

Golden files live in tests/golden/.  After a deliberate change of the output,
review the new files by eye and lock them with

    SYMBACKPROP_REGENERATE=1 python3 -m pytest tests/test_latex.py

which rewrites tests/golden/* and docs/derivation-2layer.png instead of comparing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping

import pytest
from sympy import (
    HadamardPower,
    Inverse,
    MatMul,
    MatrixSymbol,
    OneMatrix,
    Rational,
    Symbol,
    Trace,
)

from symbackprop import Dense, Network, NotationError, derive, load_spec
from symbackprop.cli import main
from symbackprop.derive import expand_names
from symbackprop.calculus.expressions import Adjoint, Broadcast, SumEntries
from symbackprop.printing import LatexPrinter, to_latex
from symbackprop.outputs.documents import (
    OutputError,
    break_lines,
    latex_width,
    parse_notation,
    write_output,
)
from symbackprop.calculus.simplify import tidy

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
REGENERATE = os.environ.get("SYMBACKPROP_REGENERATE") == "1"
SEED_NOTATION = {"symbols": {"W1": "w", "X": "a", "Y": "y"}, "learning_rate": "R", "scalar": True, "inline": True}


def seed() -> Network:
    return load_spec(ROOT / "examples" / "seed.toml")


def sigmoid2() -> Network:
    return Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2", "sigmoid")], cost="squared_error", batch="m")


def softmax3() -> Network:
    return Network(4, [Dense(8, "relu"), Dense(8, "relu"), Dense(3, "softmax")], cost="softmax_cross_entropy",
                   batch="m")


def five_layers() -> Network:
    """The stress case: five layers, symbolic widths, a batch, weight decay."""
    return Network("n_0", [Dense(f"n_{l}", "tanh") for l in range(1, 5)] + [Dense("n_5", "softmax")],
                   cost="softmax_cross_entropy", batch="m", weight_decay="mu")


def five_layers_mixed() -> Network:
    """Five layers in the rows layout, every kind of activation, a layer without bias, binary cross-entropy."""
    activations = ["relu", "x**3", "tanh", "leaky_relu"]
    return Network("n_0", [Dense(f"n_{l}", a) for l, a in enumerate(activations, 1)] + [Dense("n_5", "sigmoid",
                   bias=False)], cost="binary_cross_entropy", batch="m", layout="rows", weight_decay=0.01)


# --- the printer -----------------------------------------------------------------------

W2, d2, a1 = MatrixSymbol("W2", 3, 4), MatrixSymbol("delta2", 3, 1), MatrixSymbol("a1", 3, 1)
Y, z1, b1 = MatrixSymbol("Y", 3, 1), MatrixSymbol("z1", 3, 1), MatrixSymbol("b1", 3, 1)
SIGMOID = Network(1, [Dense(1, "sigmoid")]).activations[0]


@pytest.mark.parametrize(
    "expr, latex",
    [
        (W2.T * d2, r"W^{(2)\top} \delta^{(2)}"),
        (MatrixSymbol("X", 4, 1), "a^{(0)}"),
        (Y, "y"),
        (Adjoint(MatrixSymbol("W1", 3, 4)), r"\frac{\partial C}{\partial W^{(1)}}"),
        (SIGMOID.apply(z1).derivative(), r"\sigma'(z^{(1)})"),
        (MatMul(2, a1 - Y), "2 (a^{(1)} - y)"),
        (Broadcast(b1, 3, Symbol("m")), r"b^{(1)} \mathbf{1}^\top"),
        (Broadcast(MatrixSymbol("b1", 1, 3), Symbol("m"), 3), r"\mathbf{1} b^{(1)}"),
        (SumEntries(HadamardPower(a1 - Y, 2)), r"\lVert a^{(1)} - y \rVert_F^2"),
        (SumEntries(a1), r"\sum_{i,j} [a^{(1)}]_{ij}"),
        (OneMatrix(3, 3) * a1, r"\mathbf{1}\,\mathbf{1}^\top a^{(1)}"),
        (d2 * OneMatrix(1, 5), r"\delta^{(2)} \mathbf{1}^\top"),
        (HadamardPower(z1, 2), r"(z^{(1)})^{\circ 2}"),
        (Rational(1, 2) * SumEntries(a1), r"\frac{1}{2} \sum_{i,j} [a^{(1)}]_{ij}"),
        (Trace(MatrixSymbol("A", 3, 3)), r"\operatorname{tr}(A)"),
        (Inverse(MatrixSymbol("W1", 3, 3)), r"(W^{(1)})^{-1}"),
    ],
    ids=["transpose merges the layer superscript", "input is a0", "target is y", "adjoint", "sigma prime",
         "scaled difference", "bias broadcast across columns", "bias broadcast down rows", "frobenius norm",
         "sum of entries", "square ones matrix as 1 1T", "ones row vector", "power of a superscripted name",
         "rational coefficient", "trace", "inverse of a superscripted name"],
)
def test_printer_writes_paper_notation(expr, latex):
    assert to_latex(expr) == latex


def test_hadamard_product_puts_the_activation_derivative_last_and_keeps_the_scale_in_front():
    d = derive(Network(3, [Dense(2, "sigmoid")], batch="m"))
    assert to_latex(d.deltas["delta1"].definition) == r"2 (a^{(1)} - y) \odot \sigma'(z^{(1)})"


def test_hadamard_division_prints_as_oslash():
    d = derive(softmax3())
    assert to_latex(d.steps[0].rhs) == r"-y \oslash a^{(3)}"


def test_hidden_delta_follows_the_textbook_product_form():
    d = derive(sigmoid2())
    assert to_latex(d.deltas["delta1"].definition) == r"(W^{(2)\top} \delta^{(2)}) \odot \sigma'(z^{(1)})"


def test_bold_writes_latin_matrices_upright_bold_and_greek_ones_bold_symbols():
    assert to_latex(W2.T * d2, bold=True) == r"\mathbf{W}^{(2)\top} \boldsymbol{\delta}^{(2)}"


def test_symbols_rename_a_quantity_or_a_whole_kind():
    assert to_latex(W2.T * d2, symbols={"W2": "V", "delta": r"\epsilon"}) == r"V^\top \epsilon^{(2)}"


def test_layer_labels_give_the_general_form():
    W3, d3 = MatrixSymbol("W3", 3, 4), MatrixSymbol("delta3", 3, 1)
    assert to_latex(W3.T * d3, layer_labels={3: "l+1"}) == r"W^{(l+1)\top} \delta^{(l+1)}"


def test_generic_activations_are_written_sigma_subscripted_by_layer():
    printer = LatexPrinter({"layer_labels": {1: "l"}, "generic_activations": True})
    assert printer.doprint(SIGMOID.apply(z1).derivative()) == r"\sigma_{l}'(z^{(l)})"


def test_scalar_notation_drops_transposes_and_orders_factors_as_algebra_does():
    d = derive(seed())
    gradient = tidy(expand_names(d.gradients["W1"]))
    printer = LatexPrinter({"scalar": True, "symbols": {"W1": "w", "X": "a"}})
    assert printer.doprint(gradient) == "2 a (a w - y)"


def test_custom_activation_prints_with_its_own_name():
    d = derive(Network(2, [Dense(3, "x**3"), Dense(1)]))
    assert r"\phi'(z^{(1)})" in d.latex()
    assert r"$\phi(x) = x^{3}$" in d.latex()


# --- the document --------------------------------------------------------------------------

def test_latex_follows_the_order_a_reader_needs():
    tex = derive(sigmoid2()).latex()
    headings = ["Network.", "Shapes", "Forward pass.", "Cost.", "Backward pass: the chain rule.",
                "Delta recursion.", "Gradients.", "Gradient descent."]
    positions = [tex.index(heading) for heading in headings]
    assert positions == sorted(positions)


def test_shapes_are_stated_in_general_and_for_every_quantity():
    tex = derive(sigmoid2()).latex()
    assert r"W^{(l)} &\in \mathbb{R}^{n_{l} \times n_{l-1}}" in tex
    assert r"W^{(2)} &\in \mathbb{R}^{n_{2} \times n_{1}}" in tex
    assert r"z^{(1)}, a^{(1)}, \delta^{(1)} &\in \mathbb{R}^{n_{1} \times m}" in tex


def test_general_form_covers_the_hidden_layers_and_the_explicit_form_every_layer():
    tex = derive(softmax3()).latex()
    assert r"For $l = L-1, \dots, 1$:" in tex
    assert r"&= (W^{(l+1)\top} \delta^{(l+1)}) \odot \operatorname{ReLU}'(z^{(l)})" in tex
    assert r"\frac{\partial C}{\partial W^{(l)}} &= \delta^{(l)} a^{(l-1)\top}" in tex
    for layer in (1, 2, 3):
        assert rf"\frac{{\partial C}}{{\partial W^{{({layer})}}}} &= \delta^{{({layer})}}" in tex


def test_every_step_names_its_rule():
    d = derive(softmax3())
    tex = d.latex()
    for step in d.steps:
        assert rf"\tag*{{\small[{step.rule}]}}" in tex


def test_the_softmax_step_states_the_distribution_assumption():
    d = derive(softmax3())
    (assumption,) = d.assumptions
    assert rf"\stepnote{{\small Assuming {assumption}.}}" in d.latex()
    assert f"*Assuming {assumption}.*" in d.markdown()


def test_update_rule_uses_the_chosen_learning_rate():
    tex = derive(sigmoid2()).latex(learning_rate=r"\alpha")
    assert r"W^{(l)} &\leftarrow W^{(l)} - \alpha \frac{\partial C}{\partial W^{(l)}}" in tex
    assert r"W^{(1)} &\leftarrow W^{(1)} - \alpha \delta^{(1)} a^{(0)\top}" in tex


def test_seed_update_rule_in_the_seeds_notation():
    tex = derive(seed()).latex(**SEED_NOTATION)
    assert r"w &\leftarrow w - R \cdot 2 a (a w - y)" in tex


def test_scalar_notation_reads_as_a_derivation_by_hand_in_its_own_symbols():
    for text in (derive(seed()).latex(**SEED_NOTATION), derive(seed()).markdown(**SEED_NOTATION)):
        for matrix_talk in ("Each sample is a column", r"\mathbb{R}", "Shapes", "Layer by layer", "W^{(l)}",
                            "l = L", "matrix product", "sum of entries", "Hadamard", "elementwise function",
                            "Layer 1 (output layer)"):
            assert matrix_talk not in text, matrix_talk
        assert "every quantity is a number" in text and "[product rule]" in text and "[power rule, sum rule]" in text
    two = derive(Network(1, [Dense(1, "tanh"), Dense(1)])).latex(scalar=True)
    assert "l = L" not in two and "W^{(l)}" not in two and "[chain rule]" in two


def test_every_symbol_that_is_not_a_quantity_is_defined_once():
    tex = derive(paper3()).latex()
    for definition in (r"$\odot$ and $\oslash$ are the entrywise product and division",
                       r"$\mathbf{1}$ is a column of ones: of length $N$ (the number of samples) beside a bias",
                       r"$\operatorname{ReLU}'(0)$ is taken as $0$"):
        assert tex.count(definition) == 1, definition
    assert "width in" not in tex  # no 1 1ᵀ is printed once the softmax δ leads with a − y
    every = derive(paper3()).latex(every_step=True)
    assert every.count(r"of the output layer's width in $\mathbf{1}\,\mathbf{1}^\top$") == 1
    assert r"$\operatorname{LReLU}'(0)$ is taken as $\frac{1}{100}$" in derive(five_layers_mixed()).latex()
    assert "Here " not in derive(seed()).latex()  # nothing to define
    compact = derive(paper3()).markdown(parts=["backward"])
    assert compact.count("entrywise product and division") == 1


def test_a_renamed_input_or_per_layer_quantity_is_linked_to_the_general_form():
    tex = derive(paper3()).latex(symbols={"X": "X", "a3": r"\hat{Y}", "Y": "Y", "W2": "V"})
    assert r"in the general form $X = a^{(0)}$, $\hat{Y} = a^{(L)}$, $V = W^{(2)}$." in tex
    assert "in the general form" not in derive(paper3()).latex(symbols={"W": "V"})
    assert "in the general form" not in derive(paper3()).latex(symbols={"Y": "Y", "C": r"\mathcal{L}"})


def test_the_general_form_follows_a_rename_in_the_output_layers_own_equations():
    symbols = {"a3": r"\hat{Y}", "delta3": "e", "W3": "V", "C": r"\mathcal{L}", "Y": "Y"}
    tex = derive(paper3()).latex(symbols=symbols)
    general = tex[tex.index(r"\paragraph{Forward pass.}"):tex.index("Layer by layer:\n\\subparagraph")]
    for line in (r"\hat{Y} &= \operatorname{softmax}(z^{(L)})",
                 r"z^{(L)} &= a^{(L-1)} V + \mathbf{1} b^{(L)}",
                 r"\frac{\partial \mathcal{L}}{\partial \hat{Y}} &= -Y \oslash \hat{Y}",
                 r"e = \frac{\partial \mathcal{L}}{\partial z^{(L)}} &= \hat{Y} - Y",
                 r"\frac{\partial \mathcal{L}}{\partial a^{(l)}} &= \delta^{(l+1)} W^{(l+1)\top}"):
        assert line in general, line
    for written_by_kind in ("a^{(L)}", r"\delta^{(L)}", "W^{(L)}", r"\partial C", "- y", "-y"):
        assert written_by_kind not in general, written_by_kind
    markdown = derive(paper3()).markdown(symbols=symbols)
    assert r"e = \frac{\partial \mathcal{L}}{\partial z^{(L)}} &= \hat{Y} - Y" in markdown
    assert r"in the general form $\hat{Y} = a^{(L)}$, $e = \delta^{(L)}$, $V = W^{(L)}$." in tex


def test_a_renamed_target_is_never_a_lowercase_y():
    """The targets are y by default; renamed, every place says the new symbol (the glossary too)."""
    lowercase = re.compile(r"(?<![A-Za-z\\])y(?![A-Za-z])")
    for network in (seed(), paper3(), five_layers_mixed()):
        d = derive(network)
        for options in ({"bold": True}, {"every_step": True, "numbered": True},
                        {"parts": ["backward"], "layer_by_layer": False}, {"inline": True, "line_width": 24}):
            for text in (d.latex(symbols={"Y": "Y"}, **options), d.markdown(symbols={"Y": "Y"}, **options)):
                assert not lowercase.search(text), lowercase.search(text)
        assert lowercase.search(d.latex()) and r"\mathbf{y}" in d.latex(bold=True)
    scalar = derive(seed()).latex(symbols={"Y": "t", "W1": "w", "X": "x"}, scalar=True, inline=True)
    assert not lowercase.search(scalar) and r"w &\leftarrow w - \eta \cdot 2 x (w x - t)" in scalar


def test_the_softmax_delta_leads_with_the_textbook_form():
    tex = derive(paper3()).latex()
    assert r"\delta^{(L)} = \frac{\partial C}{\partial z^{(L)}} &= a^{(L)} - y \tag*{\small[softmax]}" in tex
    assert r"\mathbf{1}\,\mathbf{1}^\top" not in tex
    every = derive(paper3()).latex(every_step=True)
    assert r"\mathbf{1}\,\mathbf{1}^\top\biggr) \tag*{\small[softmax]} \\" + "\n &= a^{(L)} - y" in every


def test_the_text_after_a_note_continues_unindented():
    tex = derive(paper3()).latex()
    assert "(its entries sum to 1).}\\par\\noindent\nFor $l = L-1, \\dots, 1$:" in tex
    assert "}\\par\\noindent\n" not in derive(sigmoid2()).latex()  # no note, nothing to undo


def test_headings_follow_a_renamed_delta():
    d = derive(sigmoid2())
    assert r"\paragraph{Recursion of $g$.}" in d.latex(symbols={"delta": "g"}) and "Delta" not in d.latex(
        symbols={"delta": "g"})
    assert "### Recursion of $g$" in d.markdown(symbols={"delta": "g"})
    assert r"\paragraph{Delta recursion.}" in d.latex()


def test_gradients_can_be_written_with_nabla():
    tex = derive(paper3()).latex(gradient="nabla")
    assert r"\nabla_{W^{(l)}} C &= a^{(l-1)\top} \delta^{(l)}" in tex and r"\partial" not in tex
    assert r"\delta^{(L)} = \nabla_{z^{(L)}} C" in tex
    assert r"\nabla_{W^{(1)}} L" in derive(paper3()).latex(gradient="nabla", symbols={"C": "L"})


def test_sized_ones_cannot_read_as_the_number_one():
    tex = derive(paper3()).latex(sized_ones=True, every_step=True)
    assert r"a^{(l-1)} W^{(l)} + \mathbf{1}_{N} b^{(l)}" in tex and r"\mathbf{1}_{N}^\top \delta^{(l)}" in tex
    assert r"\mathbf{1}_{n_{3}}\,\mathbf{1}_{n_{3}}^\top" in tex
    assert r"$\mathbf{1}_{k}$ is a column of $k$ ones" in tex and "of length" not in tex
    assert r"\mathbf{1}_{" not in derive(paper3()).latex()


def test_inline_writes_every_named_quantity_out():
    tex = derive(sigmoid2()).latex(inline=True)
    updates = tex[tex.index("that is"):]
    assert r"\delta" not in updates and r"\sigma'(W^{(2)} \sigma(W^{(1)} a^{(0)}" in updates


def test_long_lines_are_broken_at_top_level_operators_within_the_width():
    latex = " + ".join(rf"\lVert W^{{({l})}} \rVert_F^2" for l in range(1, 9))
    lines = break_lines(latex, 20)
    assert len(lines) > 1 and all(line.startswith("+ ") for line in lines[1:])
    assert all(latex_width(line) <= 20 for line in lines)
    assert " ".join(lines) == latex


def test_no_line_is_broken_inside_braces():
    assert break_lines(r"\frac{a + b + c + d}{e} + f", 3) == (r"\frac{a + b + c + d}{e}", "+ f")


def test_standalone_is_a_whole_document_around_the_same_body():
    d = derive(sigmoid2())
    document = d.latex(standalone=True)
    assert document.startswith(r"\documentclass") and document.endswith("\\end{document}\n")
    assert d.latex() in document


def test_markdown_has_math_blocks_and_no_latex_only_commands():
    md = derive(softmax3()).markdown()
    assert md.count("$$") % 2 == 0 and r"\begin{aligned}" in md
    assert r"\tag" not in md and r"\intertext" not in md and r"\stepnote" not in md and r"\paragraph" not in md
    assert r"&& \text{[softmax]}" in md


def _markdown_block_widths(md: str) -> list[tuple[float, str]]:
    """The estimated width (em) of every equation display of ``md``, with its first row.

    The text column starts after the widest right-hand side; a rule's text is 0.5 em a character.
    """
    widths = []
    for block in re.findall(r"\\begin\{aligned\}\n(.*?)\n\\end\{aligned\}", md, re.S):
        if r"&\in" in block:
            continue  # the shapes: cells, packed to the width by their own rule
        rows = [row.split("&") for row in block.split(" \\\\\n")]
        left = max(latex_width(row[0]) for row in rows)
        text = re.compile(r"\\text\{(.*)\}")
        right = max(latex_width(row[1]) for row in rows if not text.search(row[1]))
        beside = [len(text.search(row[3]).group(1)) for row in rows if len(row) == 4]
        below = [len(text.search(row[1]).group(1)) for row in rows if len(row) == 2 and text.search(row[1])]
        widths.append((max([left + right, *(left + right + 2 + 0.5 * n for n in beside),
                            *(left + 1 + 0.5 * n for n in below)]), block.splitlines()[0]))
    return widths


def test_markdown_honours_the_line_width_with_its_rules_too():
    for network in (softmax3(), paper3(), five_layers_mixed(), sigmoid2()):
        d = derive(network)
        for width in (24, 34, 50):
            for estimated, first in _markdown_block_widths(d.markdown(line_width=width)):
                assert estimated <= width, (width, estimated, first)
    narrow, wide = derive(paper3()).markdown(line_width=21), derive(paper3()).markdown(line_width=80)
    assert ("&= -y \\oslash a^{(L)} \\\\\n&\\quad \\text{[scalar product,} \\\\\n&\\quad \\text{sum of entries,} \\\\\n"
            "&\\quad \\text{Hadamard product,} \\\\\n&\\quad \\text{elementwise function]} \\\\\n") in narrow
    assert r"&= -y \oslash a^{(L)} && \text{[scalar product, sum of entries, Hadamard product, elementwise function]}" \
        in wide and "&\\quad \\text{[" not in wide
    # a long formula is broken at its operators, as in LaTeX: the same lines
    tex = derive(paper3()).latex(line_width=21)
    assert "&= (\\delta^{(l+1)} W^{(l+1)\\top}) \\\\\n&\\quad {} \\odot \\operatorname{ReLU}'(z^{(l)})" in narrow
    assert "&= (\\delta^{(l+1)} W^{(l+1)\\top}) \\nonumber" not in tex and \
        "&= (\\delta^{(l+1)} W^{(l+1)\\top}) \\\\\n&\\quad {} \\odot \\operatorname{ReLU}'(z^{(l)})" in tex
    below = derive(paper3()).markdown(rules="below")
    assert "&& \\text{" not in below and "&\\quad \\text{[matrix product]}" in below


def test_notebooks_show_a_derivation_by_evaluating_it():
    d = derive(sigmoid2())
    assert d._repr_markdown_() == d._repr_latex_()  # the same content, whichever the front end picks
    assert not re.search(r"^#", d._repr_markdown_(), re.M)  # no heading inside an output cell
    summary = d._repr_latex_()
    assert summary.startswith("$$\n\\begin{aligned}") and summary.rstrip().endswith("$$")
    assert r"\delta^{(1)} &= (W^{(2)\top} \delta^{(2)}) \odot \sigma'(z^{(1)})" in summary


def test_same_input_gives_byte_identical_output():
    first, second = derive(softmax3()), derive(softmax3())
    assert first.latex(standalone=True) == second.latex(standalone=True)
    assert first.markdown() == second.markdown()


def test_user_templates_replace_the_bundled_ones_by_name(tmp_path):
    (tmp_path / "derivation.md.j2").write_text("{% for e in gradients.equations %}{{ e.lhs }}\n{% endfor %}")
    md = derive(Network(2, [Dense(1, bias=False)])).markdown(template_dir=tmp_path)
    assert md == r"\frac{\partial C}{\partial W^{(1)}}" + "\n"


LONG_TAG = "[scalar product, sum of entries, Hadamard product, elementwise function]"


def test_a_rule_tag_wider_than_the_line_width_goes_below_its_step_wrapped():
    d = derive(softmax3())
    assert rf"\tag*{{\small{LONG_TAG}}}" in d.latex()  # 34 em: the tag fits beside or under its step
    narrow = d.latex(line_width=21)
    assert LONG_TAG in narrow and rf"\tag*{{\small{LONG_TAG}}}" not in narrow
    assert rf"\stepnote{{\small{LONG_TAG}}}" in narrow  # a paragraph as wide as the column, so it wraps
    assert r"\tag*{\small[matrix product]}" in narrow  # the short ones stay tags


def test_rules_can_all_go_below_their_steps_or_be_left_out():
    d = derive(softmax3())
    below = d.latex(rules="below")
    assert r"\tag*" not in below and r"\stepnote{\small[matrix product]}" in below
    none = d.latex(rules="none")
    assert r"\tag*" not in none and "[matrix product]" not in none and "[softmax]" not in none
    assert r"\text{[" not in d.markdown(rules="none") and r"\text{[matrix product]}" in d.markdown()
    assert parse_notation(["rules=below"]) == {"rules": "below"}


BP1_TO_BP4 = ("backward:z-L", "backward:z-l", "backward:b-l", "backward:W-l")


def test_the_compact_block_alone_is_the_general_backward_pass():
    tex = derive(paper3()).latex(parts=["backward"], layer_by_layer=False)
    assert r"\paragraph{Backward pass: the chain rule.}" in tex
    for gone in ("Forward pass", "Cost.", "Gradients.", "Gradient descent", "Layer by layer", "Layer 3", "Network."):
        assert gone not in tex
    assert r"\delta^{(L)}" in tex and r"\delta^{(l)}" in tex and "^{(3)}" not in tex


def test_parts_keep_their_order_and_the_general_form_can_stand_alone():
    d = derive(paper3())
    tex = d.latex(parts="gradients, forward", layer_by_layer=False)
    assert tex.index("Forward pass") < tex.index("Gradients.") and "Cost." not in tex
    assert "Layer by layer" not in tex and "a^{(2)}" not in tex.split("Gradients.")[0]
    md = d.markdown(parts=["cost"])
    assert "### Cost" in md and "### Forward pass" not in md and "### Network" not in md


def test_without_rules_the_backward_pass_does_not_promise_them():
    tex = derive(paper3()).latex(rules="none")
    assert "names, in brackets" not in tex and "In general, at the output layer:" in tex


def test_numbered_equations_carry_stable_unique_labels():
    tex = derive(paper3()).latex(numbered=True)
    labels = re.findall(r"\\label\{([^}]*)\}", tex)
    assert len(labels) == len(set(labels))
    for key in (*BP1_TO_BP4, "forward:z-l", "forward:a-L", "forward:z3", "cost", "backward:W3", "delta:delta2",
                "gradient:W1", "update:W-l", "update:b3"):
        assert f"bp:{key}" in labels, key
    assert r"\begin{align}" in tex and r"\begin{align*}" in tex  # the shapes stay unnumbered
    assert r"\tag*" not in tex and r"\stepnote{\small[matrix product]}" in tex
    assert r"\label{eq:backward:z-L}" in derive(paper3()).latex(numbered=True, label_prefix="eq")
    assert "\\label" not in derive(paper3()).latex()


def test_a_key_met_twice_is_numbered_on():
    from symbackprop.outputs.documents import Notation, _Context

    tex = derive(five_layers_mixed()).latex(numbered=True)
    labels = re.findall(r"\\label\{([^}]*)\}", tex)
    assert len(labels) == len(set(labels))
    context = _Context(derive(sigmoid2()), Notation(numbered=True))
    assert [context._label("backward:z-l") for _ in range(3)] == ["bp:backward:z-l", "bp:backward:z-l-2",
                                                                  "bp:backward:z-l-3"]


def test_numbered_labels_resolve_in_a_document(pdflatex, tmp_path):
    body = derive(paper3()).latex(numbered=True, parts=["backward"], layer_by_layer=False)
    refs = " ".join(rf"\eqref{{bp:{key}}}" for key in BP1_TO_BP4)
    source = _plain_article(body + f"BP1--BP4 are {refs}.\n")
    for _ in range(2):
        name, problems = _compile(pdflatex, tmp_path, "labels", source)
        assert problems == []
    log = (tmp_path / "labels.log").read_text(errors="replace")
    assert "multiply defined" not in log and "undefined" not in log, log[-2000:]


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "options, message",
    [
        ({"colour": "red"}, "unknown notation option 'colour'; known: bold, learning_rate, symbols, scalar, inline, "
                            "line_width, rules"),
        ({"bold": "yes"}, "notation option bold must be true or false, not 'yes'"),
        ({"learning_rate": ""}, "learning_rate must be a non-empty LaTeX string"),
        ({"learning_rate": r"\eta_{"}, "learning_rate has unbalanced braces"),
        ({"learning_rate": "$R$"}, "must be math-mode LaTeX, without an unescaped $, &, % or #"),
        ({"symbols": {"W1": "w % weight"}}, "symbols['W1'] must be math-mode LaTeX"),
        ({"symbols": {"W9": "w"}}, "symbols: unknown quantity 'W9'; known: C, X, Y, W, b, z, a, delta, W1, b1"),
        ({"symbols": ["W1"]}, "symbols must map names to LaTeX"),
        ({"scalar": True}, "scalar notation needs every quantity 1×1"),
        ({"line_width": 0}, "line_width must be a number of em from 10 to 1000"),
        ({"line_width": 11}, "notation option line_width=11 em is too narrow: the equation of $"),
        ({"gradient": "del"}, "notation option gradient must be partial or nabla, not 'del'"),
        ({"rules": "margin"}, "notation option rules must be one of tags, below, none, not 'margin'"),
        ({"parts": ["forward", "bias"]}, "notation option parts: no part 'bias'; the parts are network, forward"),
        ({"parts": ""}, "notation option parts names no part"),
        ({"parts": 3}, "notation option parts must be a list of parts, not 3"),
        ({"parts": "cost,cost"}, "notation option parts names a part twice"),
        ({"numbered": "yes"}, "notation option numbered must be true or false"),
        ({"label_prefix": "bp:x"}, "notation option label_prefix must be a letter then letters, digits or '-'"),
        ({"symbols": {"W1": "w", "W2": "w"}}, "symbols: 'W1' and 'W2' are both renamed to 'w'"),
        ({"template_dir": "/no/such/folder"}, "template_dir '/no/such/folder' is not a folder"),
    ],
)
def test_bad_notation_is_a_clear_error(options, message):
    d = derive(sigmoid2())
    with pytest.raises(NotationError, match=re.escape(message)):
        d.latex(**options)


def test_a_broken_user_template_is_a_notation_error(tmp_path):
    (tmp_path / "derivation.tex.j2").write_text("{{ no_such_part }}")
    with pytest.raises(NotationError, match="template derivation.tex.j2.*'no_such_part' is undefined"):
        derive(sigmoid2()).latex(template_dir=tmp_path)


def test_unwritable_output_is_an_error_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "missing" / "out.tex"
    with pytest.raises(OutputError, match="cannot write"):
        write_output("text", target)
    folder = tmp_path / "folder.tex"
    folder.mkdir()
    with pytest.raises(OutputError):
        write_output("text", folder)
    assert [p.name for p in tmp_path.iterdir()] == ["folder.tex"] and not any(folder.iterdir())


def test_output_replaces_a_file_whole(tmp_path):
    target = tmp_path / "out.tex"
    target.write_text("old")
    write_output("new", target)
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.tex"]


def test_notation_from_the_command_line_is_parsed_or_refused():
    assert parse_notation(["bold=yes", "symbols.X=a"]) == {"bold": True, "symbols": {"X": "a"}}
    for item, message in [("bold", "is not KEY=VALUE"), ("scalar=maybe", "true or false"),
                          ("line_width=wide", "line_width must be a number")]:
        with pytest.raises(NotationError, match=message):
            parse_notation([item])


def test_the_examples_in_the_documentation_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    for block in re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "latex.md").read_text(encoding="utf-8"), re.S):
        exec(compile(block, "docs/latex.md", "exec"), {})


# --- the command line --------------------------------------------------------------------------

def test_cli_writes_standalone_latex_and_markdown(tmp_path, capsys):
    tex, md = tmp_path / "seed.tex", tmp_path / "seed.md"
    assert main(["derive", str(ROOT / "examples" / "seed.toml"), "--latex", str(tex), "--standalone",
                 "--markdown", str(md)]) == 0
    d = derive(seed())
    assert tex.read_text() == d.latex(standalone=True) and md.read_text() == d.markdown()
    assert capsys.readouterr().out == ""


def test_cli_writes_to_stdout_in_the_seeds_notation(capsys):
    argv = ["derive", str(ROOT / "examples" / "seed.toml"), "--latex", "-", "--notation", "learning_rate=R",
            "--notation", "scalar=true", "--notation", "inline=true"]
    for name, latex in SEED_NOTATION["symbols"].items():
        argv += ["--notation", f"symbols.{name}={latex}"]
    assert main(argv) == 0
    assert r"w &\leftarrow w - R \cdot 2 a (a w - y)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--standalone"], "--standalone needs --latex FILE"),
        (["--latex", "{out}", "--notation", "colour=red"], "unknown notation option 'colour'"),
        (["--latex", "{missing}/out.tex"], "cannot write"),
        (["--notation", "bold=true"], "--notation needs --latex FILE or --markdown FILE"),
    ],
)
def test_cli_bad_input_is_one_error_line_and_leaves_existing_files_alone(tmp_path, capsys, extra, message):
    out = tmp_path / "out.tex"
    out.write_text("kept")
    argv = [a.format(out=out, missing=tmp_path / "missing") for a in extra]
    assert main(["derive", str(ROOT / "examples" / "seed.toml"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert out.read_text() == "kept" and [p.name for p in tmp_path.iterdir()] == ["out.tex"]


# --- golden files ---------------------------------------------------------------------------------

GOLDEN_CASES = {
    "seed.tex": lambda: derive(seed()).latex(),
    "seed.md": lambda: derive(seed()).markdown(),
    "seed-notation.tex": lambda: derive(seed()).latex(**SEED_NOTATION),
    "sigmoid2.tex": lambda: derive(sigmoid2()).latex(),
    "sigmoid2.md": lambda: derive(sigmoid2()).markdown(),
    "softmax3.tex": lambda: derive(softmax3()).latex(),
    "softmax3.md": lambda: derive(softmax3()).markdown(),
    "paper3-two-columns.tex": lambda: derive(paper3()).latex(line_width=21),
    "paper3-compact-numbered.tex": lambda: derive(paper3()).latex(parts=["backward"], layer_by_layer=False,
                                                                  numbered=True),
    "paper3-renamed-numbered.tex": lambda: derive(paper3()).latex(symbols={"a3": r"\hat{Y}", "X": "X", "Y": "Y"},
                                                                  numbered=True, line_width=21),
    # the layer library: a pre-norm transformer block (rows) and batch normalisation (columns)
    "transformer-block.tex": lambda: derive(load_spec(ROOT / "examples" / "transformer_block.toml")).latex(),
    "transformer-block.md": lambda: derive(load_spec(ROOT / "examples" / "transformer_block.toml")).markdown(),
    "batchnorm-mlp.tex": lambda: derive(load_spec(ROOT / "examples" / "batchnorm_mlp.toml")).latex(),
}


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_rendering_matches_its_golden_file(name):
    rendered = GOLDEN_CASES[name]()
    path = GOLDEN / name
    if REGENERATE:
        path.write_text(rendered, encoding="utf-8", newline="\n")
    assert rendered == path.read_text(encoding="utf-8"), f"{name} changed; review, then regenerate (see top)"


# --- pdflatex ---------------------------------------------------------------------------------------

def _plain_article(body: str) -> str:
    """The body in a default ``article``, the narrowest page the default line width is meant for."""
    return ("\\documentclass{article}\n\\usepackage{amsmath}\n\\usepackage{amssymb}\n\\allowdisplaybreaks\n"
            f"\\begin{{document}}\n{body}\\end{{document}}\n")


DOCUMENTS = {
    "seed": lambda: derive(seed()).latex(standalone=True),
    "seed-notation": lambda: derive(seed()).latex(standalone=True, **SEED_NOTATION),
    "sigmoid2": lambda: derive(sigmoid2()).latex(standalone=True),
    "softmax3": lambda: derive(softmax3()).latex(standalone=True),
    "five-layers": lambda: derive(five_layers()).latex(standalone=True),
    "five-layers-article": lambda: _plain_article(derive(five_layers()).latex()),
    "five-layers-mixed-bold": lambda: _plain_article(derive(five_layers_mixed()).latex(bold=True)),
    "sigmoid2-inline": lambda: _plain_article(derive(sigmoid2()).latex(inline=True)),
}


def _compile(pdflatex: str, folder: Path, name: str, source: str) -> tuple[str, list[str]]:
    (folder / f"{name}.tex").write_text(source, encoding="utf-8")
    result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                             f"{name}.tex"], cwd=folder, capture_output=True, text=True, timeout=120)
    log = (folder / f"{name}.log").read_text(encoding="utf-8", errors="replace")
    problems = [line for line in log.splitlines() if line.startswith("!") or line.startswith("Overfull \\hbox")]
    if result.returncode != 0 and not problems:
        problems = [f"pdflatex exited with {result.returncode}"]
    return name, problems


def test_standalone_documents_compile_without_errors_or_overfull_boxes(pdflatex, tmp_path):
    sources = {name: build() for name, build in DOCUMENTS.items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(lambda item: _compile(pdflatex, tmp_path, *item), sources.items()))
    assert results == {name: [] for name in DOCUMENTS}
    if REGENERATE and shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "110", "-f", "1", "-l", "1", "-singlefile",
                        str(tmp_path / "sigmoid2.pdf"), str(ROOT / "docs" / "derivation-2layer")], check=True)


# --- ink outside the text block -------------------------------------------------------------------
#
# pdflatex reports an overfull line, but not a \tag* or a display set wider than the column: those it
# sets without a word.  These pages are rendered to images and every margin, and the gutter between two
# columns, must be blank.  The geometry is fixed so that the text block is known to the pixel.

def paper3() -> Network:
    """The issue's network: three layers, ReLU and softmax cross-entropy, rows layout, symbolic widths."""
    return Network("n_0", [Dense("n_1", "relu"), Dense("n_2", "relu"), Dense("n_3", "softmax")],
                   cost="softmax_cross_entropy", batch="N", layout="rows")


_DPI = 72  # one pixel a big point
_MARGIN_IN, _COLUMNSEP_IN, _PAGE_IN = 1.0, 0.3, (8.5, 11.0)


def _measured_article(body: str, columns: int) -> str:
    return ("\\documentclass[10pt%s]{article}\n" % (",twocolumn" if columns == 2 else "")
            + "\\usepackage[paperwidth=8.5in,paperheight=11in,margin=1in,columnsep=0.3in]{geometry}\n"
            "\\usepackage{amsmath}\n\\usepackage{amssymb}\n\\allowdisplaybreaks\n\\pagestyle{empty}\n"
            f"\\begin{{document}}\n{body}\\end{{document}}\n")


def _read_pgm(path: Path) -> tuple[int, int, bytes]:
    """A binary PGM (``pdftoppm -gray``): width, height, one byte a pixel."""
    data = path.read_bytes()
    fields, i = [], 0
    while len(fields) < 4:  # magic, width, height, maximum; a comment runs to the end of its line
        while data[i:i + 1].isspace():
            i += 1
        if data[i:i + 1] == b"#":
            i = data.index(b"\n", i)
            continue
        start = i
        while not data[i:i + 1].isspace():
            i += 1
        fields.append(data[start:i])
    assert fields[0] == b"P5" and fields[3] == b"255", fields
    width, height = int(fields[1]), int(fields[2])
    return width, height, data[i + 1:i + 1 + width * height]


def _ink_outside_the_text_block(page: Path, columns: int) -> list[str]:
    """Where ``page`` has a dark pixel outside the text block: a margin, or the gutter between two columns.

    The bottom margin is allowed the descenders of the last line (5 pt).
    """
    width, height, pixels = _read_pgm(page)
    margin = round(_MARGIN_IN * _DPI)
    regions = {  # name: (columns x, rows y), both half-open
        "left margin": (range(0, margin - 1), range(height)),
        "right margin": (range(width - margin + 1, width), range(height)),
        "top margin": (range(width), range(0, margin - 1)),
        "bottom margin": (range(width), range(height - margin + 6, height)),
    }
    if columns == 2:
        column = (width - 2 * margin - _COLUMNSEP_IN * _DPI) / 2
        regions["gutter"] = (range(round(margin + column) + 1, round(margin + column + _COLUMNSEP_IN * _DPI) - 1),
                             range(height))
    return [f"{page.name}: ink in the {where}" for where, (xs, ys) in regions.items()
            if any(pixels[y * width + x] < 128 for y in ys for x in xs)]


MEASURED = {
    "paper3-one-column": (1, lambda: derive(paper3()).latex()),
    "paper3-two-columns": (2, lambda: derive(paper3()).latex(line_width=21)),
    "softmax3-two-columns": (2, lambda: derive(softmax3()).latex(line_width=21)),
    "five-layers-mixed-two-columns": (2, lambda: derive(five_layers_mixed()).latex(line_width=21, bold=True)),
    "seed-notation-two-columns": (2, lambda: derive(seed()).latex(line_width=21, **SEED_NOTATION)),
    "paper3-two-columns-rules-below": (2, lambda: derive(paper3()).latex(line_width=21, rules="below")),
    "paper3-two-columns-numbered": (2, lambda: derive(paper3()).latex(line_width=21, numbered=True)),
    "paper3-renamed-numbered": (2, GOLDEN_CASES["paper3-renamed-numbered.tex"]),
    "paper3-nabla-two-columns": (2, lambda: derive(paper3()).latex(line_width=21, gradient="nabla")),
    "paper3-sized-ones": (2, lambda: derive(paper3()).latex(line_width=21, sized_ones=True, bold=True)),
    "paper3-compact": (2, lambda: derive(paper3()).latex(line_width=21, parts=["backward"], layer_by_layer=False)),
    "transformer-one-column": (1, GOLDEN_CASES["transformer-block.tex"]),
    "transformer-two-columns": (2, lambda: derive(load_spec(ROOT / "examples" / "transformer_block.toml"))
                                .latex(line_width=21)),
    "batchnorm-two-columns": (2, lambda: derive(load_spec(ROOT / "examples" / "batchnorm_mlp.toml")).latex(line_width=21)),
}


@pytest.fixture(scope="module")
def pdftoppm() -> str:
    found = shutil.which("pdftoppm")
    if found is None:
        reason = "pdftoppm is not installed (apt-get install poppler-utils)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(reason)
    return found


def test_nothing_is_set_outside_the_text_block_in_one_or_two_columns(pdflatex, pdftoppm, tmp_path):
    sources = {name: _measured_article(build(), columns) for name, (columns, build) in MEASURED.items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(lambda item: _compile(pdflatex, tmp_path, *item), sources.items()))
    assert results == {name: [] for name in MEASURED}
    problems = []
    for name, (columns, _) in MEASURED.items():
        subprocess.run([pdftoppm, "-gray", "-r", str(_DPI), str(tmp_path / f"{name}.pdf"), str(tmp_path / name)],
                       check=True)
        pages = sorted(tmp_path.glob(f"{name}-*.pgm"))
        assert pages, f"{name}: pdftoppm wrote no page"
        for page in pages:
            problems += _ink_outside_the_text_block(page, columns)
    assert problems == [], "\n".join(problems)


# --- what is set below a step stays with it -------------------------------------------------------------
#
# A rule or note set below its step must not be the first line of a column, cut off from its step.  The
# derivation is set twelve times in two columns, each copy a little lower, so that column breaks fall at
# many places in it; pdftotext gives every word's position, and no column may begin with a rule or a note.
# (With amsmath's \intertext, which set them before, 8 of the 44 columns of the rules="below" case began with one.)

def _column_tops(html: str, middle: float) -> list[str]:
    """The first line of every column of every page, from ``pdftotext -bbox`` output."""
    word = re.compile(r'<word xMin="([0-9.]+)" yMin="([0-9.]+)" xMax="[0-9.]+" yMax="[0-9.]+">([^<]*)</word>')
    tops = []
    for page in html.split("<page ")[1:]:
        words = [(float(x), float(y), text) for x, y, text in word.findall(page)]
        for left in (True, False):
            column = [w for w in words if (w[0] < middle) == left]
            if column:
                top = min(y for _, y, _ in column)
                tops.append(" ".join(text for _, _, text in sorted(w for w in column if w[1] - top < 3)))
    return tops


def test_a_rule_or_note_set_below_its_step_never_begins_a_column(pdflatex, pdftoppm, tmp_path):
    pdftotext = shutil.which("pdftotext")
    assert pdftotext is not None, "pdftotext comes with pdftoppm, in poppler-utils"
    cases = {"below": {"rules": "below"}, "numbered": {"numbered": True}, "tags": {}}
    sources = {}
    for name, options in cases.items():
        body = derive(paper3()).latex(line_width=21, **options)
        sources[name] = _measured_article("".join(f"\\par Text.\\par\n\\vspace{{{3 * k}pt}}\n{body}"
                                                  for k in range(12)), 2)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(pool.map(lambda item: _compile(pdflatex, tmp_path, *item), sources.items()))
    assert results == {name: [] for name in cases}
    for name in cases:
        subprocess.run([pdftotext, "-bbox", str(tmp_path / f"{name}.pdf"), str(tmp_path / f"{name}.html")],
                       check=True)
        tops = _column_tops((tmp_path / f"{name}.html").read_text(encoding="utf-8"), _PAGE_IN[0] * _DPI / 2)
        assert len(tops) > 30, (name, len(tops))  # enough column breaks to have met every kind of place
        assert [top for top in tops if top.startswith(("[", "Assuming"))] == [], name


def test_a_rule_set_below_its_step_is_a_stepnote_after_an_unbreakable_row_end():
    tex = derive(paper3()).latex(line_width=21)
    assert r"\intertext" not in tex
    assert ("\\\\*\n\\stepnote{\\small[scalar product, sum of entries, Hadamard product, elementwise function]}\n"
            in tex)
    assert ("\\begingroup\\postdisplaypenalty=10000\n\\begin{align}" in derive(paper3()).latex(numbered=True))
    # a rule and a note below one step share one \stepnote
    below = derive(paper3()).latex(rules="below")
    assert ("\\stepnote{\\small[softmax]\\endgraf\\noindent \\small Assuming every target row is a probability "
            "distribution (its entries sum to 1).}" in below)


# --- other document classes: revtex (two columns) and beamer ------------------------------------------
#
# The body must drop into a class's document as it is, with the class's own paragraph settings.  Each
# document reports its text block to the log (the class, not this test, decides it), and its pages are
# checked as above: nothing in a margin or the gutter.  beamer has no \paragraph: the body provides one.

_BLOCK_PROBE = "\n".join([
    r"\makeatletter",
    r"\AtBeginDocument{\typeout{symbackprop-block left=\the\dimexpr1in+\hoffset+\oddsidemargin\relax}%",
    r"\typeout{symbackprop-block top=\the\dimexpr1in+\voffset+\topmargin+\headheight+\headsep\relax}%",
    r"\typeout{symbackprop-block width=\the\textwidth}\typeout{symbackprop-block height=\the\textheight}%",
    r"\typeout{symbackprop-block columnsep=\the\columnsep}\typeout{symbackprop-block paperwidth=\the\paperwidth}}",
    r"\makeatother", ""])


def _revtex(body: str) -> str:
    """The body in APS's two-column ``revtex4-2`` (Physical Review Letters), 10 pt."""
    return ("\\documentclass[aps,prl,twocolumn,10pt]{revtex4-2}\n\\usepackage{amsmath}\n\\usepackage{amssymb}\n"
            "\\allowdisplaybreaks\n\\pagestyle{empty}\n" + _BLOCK_PROBE
            + f"\\begin{{document}}\n{body}\\end{{document}}\n")


def _beamer(*bodies: str) -> str:
    """Each body on untitled frames of its own (``allowframebreaks``) in a default ``beamer`` presentation."""
    frames = "".join(f"\\begin{{frame}}[allowframebreaks]\n{body}\\end{{frame}}\n" for body in bodies)
    return ("\\documentclass{beamer}\n\\setbeamertemplate{navigation symbols}{}\n\\allowdisplaybreaks\n"
            + _BLOCK_PROBE + f"\\begin{{document}}\n{frames}\\end{{document}}\n")


def _measured_block(log: str) -> dict[str, float]:
    """The text block the class set, in big points (pixels at 72 dpi), from the probe's lines in the log."""
    found = {key: float(value) * 72 / 72.27 for key, value in
             re.findall(r"^symbackprop-block (\w+)=([0-9.]+)pt$", log, re.M)}
    assert set(found) == {"left", "top", "width", "height", "columnsep", "paperwidth"}, found
    return found


def _ink_outside(page: Path, block: Mapping[str, float], columns: int, vertical: bool) -> list[str]:
    """Where ``page`` has a dark pixel left or right of ``block`` (or in its gutter; above or below it too)."""
    width, height, pixels = _read_pgm(page)
    left, right = round(block["left"]), round(block["left"] + block["width"])
    regions = {"left margin": (range(0, left - 1), range(height)),
               "right margin": (range(right + 1, width), range(height))}
    if vertical:
        top, bottom = round(block["top"]), round(block["top"] + block["height"])
        regions["top margin"] = (range(width), range(0, top - 1))
        regions["bottom margin"] = (range(width), range(bottom + 6, height))  # the last line's descenders
    if columns == 2:
        column = (block["width"] - block["columnsep"]) / 2
        regions["gutter"] = (range(round(block["left"] + column) + 1,
                                   round(block["left"] + column + block["columnsep"]) - 1), range(height))
    return [f"{page.name}: ink in the {where}" for where, (xs, ys) in regions.items()
            if any(pixels[y * width + x] < 128 for y in ys for x in xs)]


OTHER_CLASSES = {  # name: (columns, whether the page's top and bottom are the text block's, the document)
    "revtex-paper3": (2, True, lambda: _revtex(derive(paper3()).latex(line_width=21))),
    "revtex-paper3-numbered-renamed": (2, True, lambda: _revtex(derive(paper3()).latex(
        line_width=21, numbered=True, symbols={"a3": r"\hat{Y}", "X": "X", "Y": "Y"}))),
    "revtex-seed-notation": (2, True, lambda: _revtex(derive(seed()).latex(line_width=21, **SEED_NOTATION))),
    # the frames' breaks are beamer's: only the sides are the text block's (the frames have no title, which
    # beamer's theme sets left of the text block)
    "beamer-paper3": (1, False, lambda: _beamer(
        derive(paper3()).latex(line_width=25, parts=["backward"], layer_by_layer=False, numbered=True),
        derive(paper3()).latex(line_width=25))),
    "beamer-sigmoid2-bold": (1, False, lambda: _beamer(derive(sigmoid2()).latex(line_width=25, bold=True))),
}


@pytest.fixture(scope="module")
def revtex_and_beamer(pdflatex) -> None:
    """revtex4-2 and beamer (with pgf) installed; missing, the test skips locally and fails in CI."""
    kpsewhich = shutil.which("kpsewhich")
    missing = [name for name in ("revtex4-2.cls", "beamer.cls", "pgfcore.sty") if kpsewhich is None
               or not subprocess.run([kpsewhich, name], capture_output=True, text=True).stdout.strip()]
    if missing:
        reason = f"{', '.join(missing)} not installed (apt-get install texlive-pictures texlive-publishers)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must install them (.ci/run does)")
        pytest.skip(reason)


def test_the_body_drops_into_revtex_and_beamer_with_nothing_outside_the_text_block(pdflatex, pdftoppm,
                                                                                     revtex_and_beamer, tmp_path):
    sources = {name: build() for name, (_, _, build) in OTHER_CLASSES.items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(lambda item: _compile(pdflatex, tmp_path, *item), sources.items()))
    assert results == {name: [] for name in OTHER_CLASSES}
    problems = []
    for name, (columns, vertical, _) in OTHER_CLASSES.items():
        log = (tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        problems += [f"{name}: {line}" for line in log.splitlines() if line.startswith("Overfull \\vbox")]
        block = _measured_block(log)
        subprocess.run([pdftoppm, "-gray", "-r", str(_DPI), str(tmp_path / f"{name}.pdf"), str(tmp_path / name)],
                       check=True)
        pages = sorted(tmp_path.glob(f"{name}-*.pgm"))
        assert pages, f"{name}: pdftoppm wrote no page"
        for page in pages:
            problems += _ink_outside(page, block, columns, vertical)
    assert problems == [], "\n".join(problems)


def test_the_body_keeps_the_documents_paragraph_settings():
    for tex in (derive(paper3()).latex(), derive(seed()).latex(**SEED_NOTATION),
                derive(paper3()).latex(parts=["backward"], layer_by_layer=False, numbered=True)):
        for setting in (r"\setlength", r"\parindent", r"\parskip", r"\documentclass", r"\usepackage", r"\def",
                        r"\newcommand", r"\renewcommand"):
            assert setting not in tex, setting
        # beamer has neither heading; every other class keeps its own
        assert tex.startswith("\\providecommand{\\paragraph}[1]{\\par\\medskip\\noindent\\textbf{#1}\\ }\n"
                              "\\providecommand{\\subparagraph}[1]{\\par\\noindent\\textit{#1}\\ }\n")


# --- speed ---------------------------------------------------------------------------------------------

def test_rendering_a_64_layer_derivation_is_fast():
    d = derive(Network("n_0", [Dense(f"n_{l}", "tanh") for l in range(1, 65)], batch="m"))
    d.latex()  # templates compiled once, as in a session
    start = time.perf_counter()
    d.latex(standalone=True)
    assert time.perf_counter() - start < 2.0  # benchmarks/bench_latex.py: about 0.1 s


def test_write_output_follows_a_link_and_keeps_the_file_mode(tmp_path):
    real = tmp_path / "real.tex"
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "link.tex"
    link.symlink_to(real)
    write_output("new", link)
    assert link.is_symlink() and real.read_text() == "new"
    assert real.stat().st_mode & 0o777 == 0o600

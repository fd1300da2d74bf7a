"""Regenerate the images of docs/tutorial.md from symbackprop's own output.

    python docs/images/regenerate.py

Needs pdflatex and poppler's pdftoppm (Debian: texlive-latex-base,
texlive-latex-recommended, poppler-utils) and matplotlib. The same versions of
these tools give byte-identical images.

* seed-derivation.png — the seed's network in the seed's notation
  (``d.latex(standalone=True, symbols=…, learning_rate="R", scalar=True,
  inline=True)``), compiled on one tall page so that the whole derivation
  shows at once;
* derivation-3layer.png — ``d.latex(standalone=True)`` for a 3-layer sigmoid
  network with symbolic widths, on one tall page, without the layer-by-layer
  steps of the backward pass (they repeat the general steps with numbers);
* paper-two-columns.png — page 1 of the issue 13 network (three layers, ReLU
  and softmax cross-entropy, rows layout, symbolic widths) with
  ``d.latex(line_width=21)`` ``\\input`` into a two-column 10 pt ``article``
  with 1 in margins, as tests/test_latex.py measures it;
* seed-training.png — ``symbackprop train examples/seed.toml --plot``.

Each LaTeX image is rendered at 110 dpi and cropped to its text plus a small
margin. Page numbers are switched off (``\\pagestyle{empty}``); nothing else in
the documents is changed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))  # this tree's symbackprop, not one installed
from symbackprop import Dense, Network, derive, load_spec  # noqa: E402
from symbackprop.training import train_spec  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DPI = 110
MARGIN = 14  # pixels of white around the text


def seed_document() -> str:
    d = derive(load_spec(ROOT / "examples" / "seed.toml"))
    document = d.latex(True, symbols={"W1": "w", "X": "a", "Y": "y"}, learning_rate="R", scalar=True, inline=True)
    return _tall(document)


def three_layer_document() -> str:
    net = Network("n_0", [Dense("n_1", "sigmoid"), Dense("n_2", "sigmoid"), Dense("n_3", "sigmoid")], batch="m")
    document = derive(net).latex(standalone=True)
    # the backward pass layer by layer repeats the general form with numbers; the image leaves it out
    short, count = re.subn(r"Layer by layer:\n\\subparagraph\{.*?(?=\\paragraph\{Delta recursion\.\})", "",
                           document, flags=re.DOTALL)
    if count != 1:
        raise SystemExit("the backward pass is no longer laid out as this script expects")
    return _tall(short)


def paper_two_columns_document() -> str:
    net = Network("n_0", [Dense("n_1", "relu"), Dense("n_2", "relu"), Dense("n_3", "softmax")],
                  cost="softmax_cross_entropy", batch="N", layout="rows")
    body = derive(net).latex(line_width=21)
    return ("\\documentclass[10pt,twocolumn]{article}\n"
            "\\usepackage[paperwidth=8.5in,paperheight=11in,margin=1in,columnsep=0.3in]{geometry}\n"
            "\\usepackage{amsmath}\n\\usepackage{amssymb}\n\\allowdisplaybreaks\n\\pagestyle{empty}\n"
            f"\\begin{{document}}\n{body}\\end{{document}}\n")


def _no_page_numbers(document: str) -> str:
    return document.replace(r"\begin{document}", "\\pagestyle{empty}\n\\begin{document}", 1)


def _tall(document: str) -> str:
    """The document on one page as wide as the usual one and tall enough for everything."""
    tall, count = re.subn(r"\\usepackage\[margin=1in\]\{geometry\}",
                          r"\\usepackage[paperwidth=8.5in,paperheight=40in,margin=1in]{geometry}", document)
    if count != 1:
        raise SystemExit("the standalone document no longer sets its geometry as this script expects")
    return _no_page_numbers(tall)


def _pdf(folder: Path, name: str, source: str) -> Path:
    (folder / f"{name}.tex").write_text(source, encoding="utf-8")
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", f"{name}.tex"],
                   cwd=folder, check=True, capture_output=True)
    return folder / f"{name}.pdf"


def _text_box(pdf: Path) -> tuple[int, int, int, int]:
    """x, y, width, height in pixels of everything that is not white on page 1."""
    stem = pdf.with_suffix("")
    subprocess.run(["pdftoppm", "-gray", "-r", str(DPI), "-f", "1", "-l", "1", "-singlefile", str(pdf), str(stem)],
                   check=True)
    data = stem.with_suffix(".pgm").read_bytes()
    magic, width, height, maxval, pixels = data.split(maxsplit=4)
    if magic != b"P5" or int(maxval) != 255:
        raise SystemExit(f"unexpected image format from pdftoppm: {magic!r}")
    page = np.frombuffer(pixels[: int(width) * int(height)], dtype=np.uint8).reshape(int(height), int(width))
    rows = np.flatnonzero((page < 250).any(axis=1))
    columns = np.flatnonzero((page < 250).any(axis=0))
    top, bottom = max(rows[0] - MARGIN, 0), min(rows[-1] + MARGIN, int(height) - 1)
    left, right = max(columns[0] - MARGIN, 0), min(columns[-1] + MARGIN, int(width) - 1)
    return left, top, right - left + 1, bottom - top + 1


def latex_image(source: str, target: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        pdf = _pdf(Path(folder), target.stem, source)
        x, y, width, height = _text_box(pdf)
        subprocess.run(["pdftoppm", "-png", "-r", str(DPI), "-f", "1", "-l", "1", "-x", str(x), "-y", str(y),
                        "-W", str(width), "-H", str(height), "-singlefile", str(pdf), str(target.with_suffix(""))],
                       check=True)


def training_plot(target: Path) -> None:
    train_spec(ROOT / "examples" / "seed.toml", plot=target)


def main() -> int:
    for tool in ("pdflatex", "pdftoppm"):
        if shutil.which(tool) is None:
            print(f"regenerate.py needs {tool}", file=sys.stderr)
            return 1
    latex_image(seed_document(), HERE / "seed-derivation.png")
    latex_image(three_layer_document(), HERE / "derivation-3layer.png")
    latex_image(paper_two_columns_document(), HERE / "paper-two-columns.png")
    training_plot(HERE / "seed-training.png")
    for image in sorted(HERE.glob("*.png")):
        print(f"{image.relative_to(ROOT)}: {image.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long rendering a derivation as LaTeX and Markdown takes, and how it grows with depth.

Renders tanh networks with symbolic widths (n_0 … n_L, batch m) at depths 8,
16, 32 and 64 — the standalone LaTeX document and the Markdown — from an
already derived :class:`~symbackprop.Derivation` (deriving is measured by
``bench_derive.py``).  Prints medians, the 64/32 ratio (2.0 is linear growth),
and whether the 64-layer document stays under the 1 s the issue asks for.

    python benchmarks/bench_latex.py [--repeat N]
"""

from __future__ import annotations

import argparse

from _timing import median_time, tanh_network

from symbackprop import derive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    derivations = {depth: derive(tanh_network(depth)) for depth in (8, 16, 32, 64)}
    derivations[8].latex(standalone=True)  # compile the templates once, as a session would
    latex = {depth: median_time(lambda d=d: d.latex(standalone=True), args.repeat) for depth, d in derivations.items()}
    markdown = {depth: median_time(lambda d=d: d.markdown(), args.repeat) for depth, d in derivations.items()}

    print(f"rendering a derived tanh network, symbolic widths (median of {args.repeat}):")
    print("  depth   LaTeX document   Markdown")
    for depth in derivations:
        print(f"  {depth:5d}   {latex[depth] * 1e3:11.1f} ms   {markdown[depth] * 1e3:7.1f} ms")
    print(f"  growth 64/32: LaTeX {latex[64] / latex[32]:.2f}, Markdown {markdown[64] / markdown[32]:.2f}"
          "   (2.00 is linear)")
    verdict = "under" if latex[64] < 1.0 else "OVER"
    print(f"  64 layers, standalone LaTeX: {latex[64]:.3f} s — {verdict} the 1 s budget")


if __name__ == "__main__":
    main()

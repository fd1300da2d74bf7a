"""Checking: gradients against finite differences, and hand-derived formulas against the derivation."""

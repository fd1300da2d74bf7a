"""The formula language: a tokenizer and parser with a whitelist, and builders from its trees to SymPy.

Nothing a user writes is ever evaluated as Python.
"""

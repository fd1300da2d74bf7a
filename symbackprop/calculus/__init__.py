"""The calculus: expression classes, their chain-rule rules, reverse mode, simplification and numeric values.

Nothing here knows what a network or a layer is.
"""

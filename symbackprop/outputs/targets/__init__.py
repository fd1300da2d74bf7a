"""Code targets: one statement plan (:mod:`.plan`), printed by each engine's printer and template."""

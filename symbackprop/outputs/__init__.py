"""What a derivation becomes: LaTeX and Markdown documents, and update code."""

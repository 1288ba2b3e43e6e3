"""The .mlw grammar, its parser, AST and diagnostics."""

"""The language server behind ``mlw lsp``: diagnostics (the compiler's own), hover, completion,
navigation, rename, formatting and quick fixes for ``.mlw`` files (see docs/editors.md)."""

"""The no-op task the runtime benchmark runs (importable by the benchmark's workers)."""


def noop() -> int:
    return 0


def raw_noop(*upstream) -> int:
    return 0

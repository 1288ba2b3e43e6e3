"""``mlw lint``/``mlw compile`` run as the console script end the process without Python's
teardown (``cli.EXIT_WITHOUT_TEARDOWN``): the output, the diagnostics and the exit code must
all still arrive."""

from __future__ import annotations

import subprocess
import sys

from mlflowdsl.compiler.api import compile_file
from mlflowdsl.compiler.render import render

MAIN = "import sys; from mlflowdsl.cli import main; main(sys.argv[1:])"
GOOD = 'workflow w {\n  task a: data_preprocessing { source = "sklearn:iris" }\n}\n'
BAD = 'workflow w {\n  task a: no_such_type { }\n}\n'


def mlw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True, timeout=120)


def test_compile_to_stdout_and_to_a_file(tmp_path):
    src = tmp_path / "w.mlw"
    src.write_text(GOOD, encoding="utf-8")
    expected = render(compile_file(str(src)).raise_for_errors(), "json")
    out = mlw("compile", str(src))
    assert (out.returncode, out.stdout) == (0, expected)
    target = tmp_path / "plan.json"
    out = mlw("compile", str(src), "-o", str(target))
    assert out.returncode == 0 and "wrote" in out.stderr
    assert target.read_text(encoding="utf-8") == expected


def test_errors_keep_their_diagnostics_and_exit_code(tmp_path):
    src = tmp_path / "bad.mlw"
    src.write_text(BAD, encoding="utf-8")
    for command in ("lint", "compile"):
        out = mlw(command, str(src))
        assert out.returncode == 1
        assert "MLW201" in out.stderr and "bad.mlw:2:" in out.stderr


def test_usage_errors_still_exit_2():
    out = mlw("compile", "--no-such-option", "x.mlw")
    assert out.returncode == 2 and "No such option" in out.stderr

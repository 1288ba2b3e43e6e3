"""The compiler ends in bounded time and memory (issue 14, point 7): diagnostics on a long line
show a window of it, YAML alias bombs and exponential templates are refused, imports read only
regular files up to a size, and many `${...}` in one string cost linear time.

The inputs that exhausted memory or hung before are compiled in a child process with an address
space limit and a timeout, so a regression fails the test instead of the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from mlflowdsl.compiler.api import compile_file, compile_text
from mlflowdsl.grammar import limits
from mlflowdsl.grammar.diagnostics import render_text

PREP = 'task prep: data_preprocessing { source = "sklearn:iris" }'
CHILD = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    from mlflowdsl.compiler.api import compile_file, compile_text
    from mlflowdsl.grammar.diagnostics import render_text
    kind, arg, file = sys.argv[1:4]
    r = compile_file(arg) if kind == "file" else compile_text(open(arg, encoding="utf-8").read(), file)
    out = render_text(r.diagnostics, r.sources)
    print(json.dumps({"codes": [d.code for d in r.diagnostics], "rendered": len(out),
                      "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
""")


def in_child(kind: str, arg: str, file: str = "", *, timeout: float = 60, memory_mib: int = 1024) -> dict:
    """Compile in a child process limited to ``memory_mib`` of address space and ``timeout``
    seconds; the child's summary, or a failed test saying which bound was hit."""
    code = CHILD.replace("MEMORY", str(memory_mib * 2**20))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        proc = subprocess.run([sys.executable, "-c", code, kind, arg, file], capture_output=True, text=True,
                              timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"compiling took more than {timeout} s")
    assert proc.returncode == 0, f"the compiler failed within {memory_mib} MiB:\n{proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_many_diagnostics_on_one_long_line_render_windows_not_copies_of_the_line(tmp_path):
    # before: 1,000 diagnostics x a 0.5 MB line = 0.5 GB of rendered text (6.5 GB for the 2,000)
    tasks = [{"task_id": f"t{i}", "task_type": "data_preprocessing", "bogus_" + "x" * 400: 1,
              "parameters": {"source": "sklearn:iris"}} for i in range(1000)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"workflow_id": "w", "tasks": tasks}))
    out = in_child("text", str(path), "big.json", memory_mib=700)
    assert out["codes"] == ["MLW106"] * 1000
    assert out["rendered"] < 1000 * 1500  # each diagnostic a few lines of at most a window


def test_the_rendered_window_keeps_the_caret_under_the_culprit():
    text = 'workflow w { name = "' + "x" * 5000 + "\\q" + "y" * 5000 + '" }'
    r = compile_text(text, "w.mlw")
    shown = render_text(r.diagnostics, r.sources).splitlines()
    src, caret = next((s, c) for s, c in zip(shown, shown[1:]) if s.startswith("1 | "))
    assert len(src) < limits.SOURCE_WINDOW + 10 and src[4:5] == "…"
    start = caret.index("^")
    assert src[start:start + 2] == "\\q"


def _yaml_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "workflow_id: w\nglobal_parameters:\n" + "\n".join("  " + line for line in lines) + "\ntasks: []\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    # before: 9 levels of 9 aliases (9**9 values) ran for minutes and took gigabytes
    path = tmp_path / "bomb.yaml"
    path.write_text(_yaml_bomb(9))
    out = in_child("file", str(path), timeout=20, memory_mib=700)
    assert out["codes"] == ["MLW106"]


def test_a_recursive_yaml_alias_is_refused():
    r = compile_text("workflow_id: w\nglobal_parameters:\n  a: &x [1, *x]\ntasks: []\n", "c.yaml")
    assert [(d.code, d.span.line) for d in r.diagnostics] == [("MLW106", 3)]


def test_yaml_aliases_of_a_normal_size_still_work():
    text = ("workflow_id: w\ndefaults: &d {timeout: 30s}\n"
            "tasks:\n  - {task_id: a, task_type: data_preprocessing, parameters: {source: 'sklearn:iris'}}\n")
    assert compile_text(text, "ok.yaml").ok


def _template_bomb(levels: int) -> str:
    out = [f"template t0() {{ {PREP} }}"]
    for i in range(1, levels + 1):
        out.append(f"template t{i}() {{ use x = t{i - 1}()  use y = t{i - 1}() }}")
    out.append(f"workflow w {{ use top = t{levels}() }}")
    return "\n".join(out)


@pytest.mark.parametrize("levels", [15, 24])  # 2**15 tasks (the task limit), 24 levels (the depth limit)
def test_exponential_templates_are_refused(tmp_path, levels):
    # before: 24 levels ran for more than a minute
    path = tmp_path / "bomb.mlw"
    path.write_text(_template_bomb(levels))
    out = in_child("file", str(path), timeout=30)
    assert out["codes"] == ["MLW109"]


def test_templates_below_the_limits_expand():
    r = compile_text(_template_bomb(6), "ok.mlw", lower_plan=False)
    assert r.ok and len([d for d in r.diagnostics if d.code == "MLW402"]) == 64


def _importer(tmp_path, target: str):
    main = tmp_path / "main.mlw"
    main.write_text(f'import "{target}"\nworkflow w {{\n  {PREP}\n}}\n')
    return main


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/stdin", "/dev/urandom"])
def test_an_import_of_a_device_is_refused_unread(tmp_path, device):
    # before: /dev/zero was read without bound, /dev/stdin blocked
    link = tmp_path / "lib.mlw"
    link.symlink_to(device)
    out = in_child("file", str(_importer(tmp_path, "lib.mlw")), timeout=20, memory_mib=700)
    assert out["codes"] == ["MLW105"]


def test_an_import_of_a_fifo_is_refused_without_blocking(tmp_path):
    # before: opening the FIFO blocked until a writer came
    os.mkfifo(tmp_path / "pipe.mlw")
    assert in_child("file", str(_importer(tmp_path, "pipe.mlw")), timeout=20)["codes"] == ["MLW105"]
    r = compile_file(_importer(tmp_path, "pipe.mlw"))
    assert [(d.code, d.span.line, d.span.column) for d in r.diagnostics] == [("MLW105", 1, 8)]
    assert "FIFO" in r.diagnostics[0].message


def test_an_import_of_a_directory_or_a_too_large_file_is_refused(tmp_path):
    (tmp_path / "dir.mlw").mkdir()
    assert "directory" in compile_file(_importer(tmp_path, "dir.mlw")).diagnostics[0].message
    big = tmp_path / "big.mlw"
    with open(big, "wb") as fh:  # sparse: its size is refused from stat, nothing is read
        fh.truncate(limits.MAX_SOURCE_BYTES + 1)
    # before: the 16 MiB were read and lexed (in a child: that does not end in reasonable time)
    assert in_child("file", str(_importer(tmp_path, "big.mlw")), timeout=30)["codes"] == ["MLW105"]
    r = compile_file(_importer(tmp_path, "big.mlw"))
    assert [d.code for d in r.diagnostics] == ["MLW105"] and "limit" in r.diagnostics[0].message


def test_the_main_file_is_read_with_the_same_bounds(tmp_path):
    os.mkfifo(tmp_path / "main.mlw")
    assert in_child("file", str(tmp_path / "main.mlw"), timeout=20)["codes"] == ["MLW105"]


def test_many_interpolations_in_one_long_string_are_linear(tmp_path):
    # before: each `${...}` re-scanned the string before it: 20,000 after 1 MB took ~30 s
    body = "a" * 1_000_000 + "${params.x}" * 20_000
    path = tmp_path / "interp.mlw"
    path.write_text(f'workflow w {{\n  params {{ x: str = "a" }}\n  task prep: data_preprocessing {{ source = "{body}" }}\n}}\n')
    started = time.monotonic()
    out = in_child("file", str(path), timeout=60)
    assert sorted(out["codes"]) == ["MLW402", "MLW405"]  # the unused task; no such data file
    assert time.monotonic() - started < 15

"""``mlw new NAME --template T``: a ready-to-run project from Jinja2 templates.

The project name is user input: it is validated, and the templates are rendered in a
``SandboxedEnvironment`` so a template (or a value) cannot reach Python internals. Values
are put into ``.mlw`` source through the ``mlw_string`` filter, which writes a valid
string literal whatever the text holds.

>>> workflow_id("churn-model 2")
'churn_model_2'
>>> mlw_string('say "hi"')
'"say \\\\"hi\\\\""'
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from mlflowdsl.errors import MlwError

PROJECTS = Path(__file__).parent / "projects"
TEMPLATES = {
    "classification": "A random forest classifier with a validation gate and an evaluation.",
    "regression": "A random forest and a linear regression compared on the same split.",
    "tuning": "Gradient boosting tuned with Optuna (a `tune` block), then evaluated.",
    "batch-scoring": "Train a classifier and score a data set into a CSV, partition by partition.",
    "model-comparison": "Several algorithms trained with `foreach` and evaluated together.",
}
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


class TemplateError(MlwError):
    """A project cannot be created (bad name, unknown template, directory in the way)."""


def workflow_id(name: str) -> str:
    """A workflow identifier from a project name (``-`` and spaces become ``_``)."""
    return re.sub(r"\W", "_", name).lower()


def mlw_string(value: object) -> str:
    """A double-quoted .mlw string literal (JSON escaping is a subset the lexer reads)."""
    return json.dumps(str(value), ensure_ascii=False)


def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(loader=FileSystemLoader(str(PROJECTS)), undefined=StrictUndefined,
                               keep_trailing_newline=True, autoescape=False)
    env.filters["mlw_string"] = mlw_string
    return env


def render_project(name: str, template: str) -> dict[str, str]:
    """File name -> content of a new project (pure; nothing is written)."""
    if template not in TEMPLATES:
        raise TemplateError(f"unknown template {template!r}", hint="choose one of: " + ", ".join(TEMPLATES))
    if not NAME.fullmatch(name):
        raise TemplateError(f"{name!r} is not a project name",
                            hint="start with a letter; use letters, digits, '-' and '_' (at most 64)")
    wid = workflow_id(name)
    file = f"{wid}.mlw"
    values = {"name": name, "workflow_id": wid, "file": file, "template": template,
              "title": name.replace("_", " ").replace("-", " ").strip().capitalize(),
              "description": TEMPLATES[template]}
    env = environment()
    return {
        file: env.get_template(f"{template}/workflow.mlw.j2").render(values),
        "params.yaml": env.get_template(f"{template}/params.yaml.j2").render(values),
        "README.md": env.get_template(f"{template}/README.md.j2").render(values),
    }


def create_project(name: str, template: str, directory: str | os.PathLike, *, force: bool = False) -> list[str]:
    """Write the project into ``directory``; returns the paths written."""
    files = render_project(name, template)
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise TemplateError(f"{target} exists and is not a directory", hint="choose another --dir")
    if target.exists() and any(target.iterdir()) and not force:
        raise TemplateError(f"{target} is not empty", hint="choose another --dir, or pass --force to write into it")
    try:
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for rel, content in files.items():
            path = target / rel
            path.write_text(content, encoding="utf-8")
            written.append(str(path))
    except OSError as exc:
        raise TemplateError(f"cannot write the project into {target}: {exc.strerror}",
                            hint="check the directory's permissions") from None
    return written


__all__ = ["TEMPLATES", "TemplateError", "create_project", "render_project", "workflow_id"]

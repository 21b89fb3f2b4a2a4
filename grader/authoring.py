"""Keeps the course's source notebooks derived from the single sources of truth.

* A solution cell whose metadata says ``"backprop_lab": {"reference": "forward_pass.affine_forward"}``
  holds exactly that function (or class) of ``solutions/``, with nbgrader's solution markers
  around each body after its docstring (for a class: each method but ``__init__``/``__repr__``).
* A locked cell with ``"backprop_lab": {"provides": ["forward_pass.affine_forward", ...]}`` holds
  those definitions as given code (e.g. notebook 03 provides the forward pass of notebook 02).
* Every assignment folder holds ``labcheck/``, the self-check helpers copied from ``grader/``.

``sync(course_dir)`` rewrites what drifted; ``sync(course_dir, check=True)`` only reports it.
"""
import ast
import importlib
import inspect
import os
import textwrap

import nbformat

GRADER_DIR = os.path.dirname(os.path.abspath(__file__))
BUNDLED_MODULES = ("checks.py", "diagnostics.py")
GIVEN_METHODS = ("__init__", "__repr__")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
LABCHECK_INIT = '''"""Self-check helpers for the Backprop Lab notebooks.

Generated from the course's grader package by `backprop-lab sync`; do not edit this copy.
"""
from .checks import (SelfCheckFailed, compare, expect_close, expect_gradient, expect_unchanged,  # noqa: F401
                     norm_error, numerical_gradient, numerical_gradient_array, rel_error, snapshot)
from .diagnostics import CATALOGUE, describe, diagnose  # noqa: F401


def judge(function, **points):
    """Marks a graded function in a grade cell; the hidden checks run at autograde time, outside your kernel."""
    checks = ", ".join(f"{kind} {value:g} pt" for kind, value in points.items())
    print(f"{function}: judged when your notebook is autograded ({checks}).")
'''


def reference_source(dotted):
    """Source text of ``module.name`` in the ``solutions`` package."""
    module_name, _, name = dotted.rpartition(".")
    module = importlib.import_module(f"solutions.{module_name}")
    return textwrap.dedent(inspect.getsource(getattr(module, name))).rstrip() + "\n"


def _bodies(tree):
    """(first_line, last_line, indent) of every body that gets solution markers."""
    found = []

    def body_of(func):
        body = func.body
        start = body[0].lineno
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            # Right after the docstring, so the reference's comments stay out of the release stub.
            start = body[0].end_lineno + 1
            body = body[1:]
        if body:
            found.append((start, body[-1].end_lineno, body[0].col_offset))

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body_of(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name not in GIVEN_METHODS:
                    body_of(item)
    return found


def with_markers(source):
    """``source`` with BEGIN/END SOLUTION around each function body (after the docstring)."""
    lines = source.splitlines()
    for first, last, indent in sorted(_bodies(ast.parse(source)), reverse=True):
        pad = " " * indent
        lines.insert(last, pad + END)
        lines.insert(first - 1, pad + BEGIN)
    return "\n".join(lines)


def expected_source(cell):
    meta = cell.get("metadata", {}).get("backprop_lab", {})
    if "reference" in meta:
        return with_markers(reference_source(meta["reference"]))
    if "provides" in meta:
        return "\n\n".join(reference_source(name).rstrip() for name in meta["provides"])
    return None


def assignment_dirs(course_dir):
    source = os.path.join(course_dir, "source")
    return sorted(os.path.join(source, d) for d in os.listdir(source) if os.path.isdir(os.path.join(source, d)))


def labcheck_files():
    files = {"__init__.py": LABCHECK_INIT}
    for name in BUNDLED_MODULES:
        with open(os.path.join(GRADER_DIR, name), encoding="utf-8") as handle:
            files[name] = handle.read()
    return files


def sync(course_dir, check=False, assignments=None):
    """Bring generated cells and bundles up to date (all assignments, or those named); returns what drifted."""
    drift = []
    for assignment in assignment_dirs(course_dir):
        if assignments and os.path.basename(assignment) not in assignments:
            continue
        bundle = os.path.join(assignment, "labcheck")
        for name, text in labcheck_files().items():
            path = os.path.join(bundle, name)
            current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
            if current != text:
                drift.append(os.path.relpath(path, course_dir))
                if not check:
                    os.makedirs(bundle, exist_ok=True)
                    with open(path, "w", encoding="utf-8") as handle:
                        handle.write(text)
        for name in sorted(os.listdir(assignment)):
            if not name.endswith(".ipynb"):
                continue
            path = os.path.join(assignment, name)
            nb = nbformat.read(path, as_version=4)
            changed = False
            for cell in nb.cells:
                wanted = expected_source(cell)
                if wanted is not None and cell.source != wanted:
                    drift.append(f"{os.path.relpath(path, course_dir)} cell {cell.get('id')}")
                    cell.source = wanted
                    changed = True
            if changed and not check:
                nbformat.write(nb, path)
    return drift

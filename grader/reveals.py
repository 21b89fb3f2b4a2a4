"""Which release gives away which assignment's solutions, and whether that assignment is due yet.

Later notebooks hand students earlier graded functions as given code (03 starts from all of
02's forward pass, 05 from 03's backward pass). That is derived here from the code, never from
a list: the release's given code (the source after nbgrader's own ``ClearSolutions`` and
``ClearHiddenTests``, configured from the course's ``nbgrader_config.py``) is compared with
every other assignment's solution cells (the reference, markers removed). A definition in the
given code reveals a graded function when it has that function's name and a body that is more
than a stub, or when its body is the reference body under another name.

Due dates are nbgrader's own: each assignment's ``duedate`` in the gradebook
(``nbgrader db assignment add 02-forward-pass --duedate="2027-02-01 17:00 Europe/Berlin"``
or the formgrader), moved later by the longest extension any student was given.
"""
import ast
import copy
import dataclasses
import datetime
from pathlib import Path

import nbformat

from .course import course_config

BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"


@dataclasses.dataclass
class Revealed:
    assignment: str          # whose solutions are given away
    functions: list          # graded names of that assignment defined in the release's given code
    due: datetime.datetime = None   # its due date (UTC, naive as nbgrader stores it), extensions included

    def names(self):
        return ", ".join(self.functions)


def _is_solution(cell):
    return cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution", False)


def _parse(source):
    """The module AST of a code cell, IPython magics and shell lines blanked; None if it does not parse."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _body(node):
    """A comparable form of a definition's body, its docstring left out."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    if isinstance(node, ast.ClassDef):
        return tuple(_body(item) if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) else ast.dump(item)
                     for item in body)
    return tuple(ast.dump(statement) for statement in body)


def _is_stub(node):
    """True for a body that does nothing but ``raise NotImplementedError``, ``pass`` or ``...`` (every method, for a class)."""
    if isinstance(node, ast.ClassDef):
        methods = [item for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))]
        return all(_is_stub(method) for method in methods if method.name not in ("__init__", "__repr__"))
    for statement in node.body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring or ``...``
        if isinstance(statement, ast.Raise) and statement.exc is not None:
            exc = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
            if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                continue
        return False
    return True


def _definitions(tree):
    return [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def graded_definitions(source_nb):
    """``{name: body}`` of every top-level function or class a source notebook's solution cells define."""
    found = {}
    for cell in source_nb.cells:
        if not _is_solution(cell):
            continue
        tree = _parse("\n".join(line for line in cell.source.splitlines() if BEGIN not in line and END not in line))
        for node in tree.body if tree else []:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[node.name] = _body(node)
    return found


def given_code(source_nb, config=None):
    """The code cells' sources of the release nbgrader generates from ``source_nb``."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions
    nb = copy.deepcopy(source_nb)
    resources = {}
    for preprocessor in (ClearSolutions, ClearHiddenTests):
        nb, resources = preprocessor(config=config, enforce_metadata=False).preprocess(nb, resources)
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def _notebooks(course, assignment):
    return [nbformat.read(path, as_version=4) for path in sorted((Path(course) / "source" / assignment).glob("*.ipynb"))]


def revealed_solutions(course, assignment, config=None):
    """``[Revealed]``: every other assignment of ``course`` whose graded functions ``assignment``'s release defines."""
    course = Path(course)
    config = config if config is not None else course_config(course)
    others = sorted(p.name for p in (course / "source").iterdir() if p.is_dir() and p.name != assignment)
    graded = {}
    for other in others:
        for nb in _notebooks(course, other):
            graded.setdefault(other, {}).update(graded_definitions(nb))
    own = {}
    for nb in _notebooks(course, assignment):
        own.update(graded_definitions(nb))
    hits = {}
    for nb in _notebooks(course, assignment):
        for source in given_code(nb, config):
            tree = _parse(source)
            for node in _definitions(tree) if tree else []:
                if _is_stub(node):
                    continue
                body = _body(node)
                for other, definitions in graded.items():
                    for name, reference in definitions.items():
                        if name in own:
                            continue  # this assignment grades the same name itself: its stub is the student's work
                        if node.name == name or body == reference:
                            hits.setdefault(other, set()).add(name)
    return [Revealed(other, sorted(names)) for other, names in sorted(hits.items())]


def due_dates(gradebook, assignments):
    """``{assignment: due date or None}`` from nbgrader's ``gradebook`` (open): the assignment's ``duedate``,
    moved to the longest extension a student has (a student with an extension is still working on it)."""
    from nbgrader.api import MissingEntry
    dates = {}
    for name in assignments:
        try:
            assignment = gradebook.find_assignment(name)
        except MissingEntry:
            dates[name] = None
            continue
        due = assignment.duedate
        if due is not None:
            due = max([due, *(s.duedate for s in assignment.submissions if s.duedate is not None)])
        dates[name] = due
    return dates


def utc_now():
    """Now, as nbgrader stores times: naive UTC."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def release_gate(course, assignment, open_gradebook, now=None):
    """``(not_yet_due, undated, passed)``: lists of :class:`Revealed` for ``assignment``'s release;
    ``open_gradebook()`` gives the course's nbgrader gradebook as a context manager."""
    now = now or utc_now()
    revealed = revealed_solutions(course, assignment)
    dates = {}
    if revealed:
        with open_gradebook() as gb:
            dates = due_dates(gb, [item.assignment for item in revealed])
    not_yet_due, undated, passed = [], [], []
    for item in revealed:
        item.due = dates.get(item.assignment)
        (undated if item.due is None else not_yet_due if item.due > now else passed).append(item)
    return not_yet_due, undated, passed


def format_due(moment):
    return moment.strftime("%Y-%m-%d %H:%M UTC")

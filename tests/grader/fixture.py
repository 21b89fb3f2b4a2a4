"""A small fixture assignment built from the reference package, for testing the grader alone."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grader.authoring import reference_source, sync, with_markers

ASSIGNMENT = "fixture"
NOTEBOOK = "layers.ipynb"
GRADED = {
    "affine_forward": {"value": 2, "no_mutation": 1, "repeat": 1},
    "relu_forward": {"value": 2, "no_mutation": 1, "repeat": 1},
    "tanh_forward": {"value": 2, "repeat": 1},
    "sigmoid_forward": {"value": 2},
    "softmax": {"value": 2},
    "mse_loss": {"value": 2},
    "softmax_cross_entropy": {"value": 2},
    "binary_cross_entropy": {"value": 2},
}


def _meta(grade_id, **fields):
    meta = {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3, "solution": False, "task": False}
    meta.update(fields)
    return {"nbgrader": meta}


def build(course, assignment=ASSIGNMENT, notebooks=None):
    """Write the fixture assignment (and its labcheck bundle) into ``course``.

    ``notebooks``: ``{file name: {"module.function": {kind: points}}}``; by default one
    notebook, ``layers.ipynb``, with the forward-pass functions of ``GRADED``.
    """
    notebooks = notebooks or {NOTEBOOK: {f"forward_pass.{f}": points for f, points in GRADED.items()}}
    folder = course / "source" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, graded in notebooks.items():
        cells = [new_markdown_cell(f"# Fixture: {name}", id="intro"),
                 new_code_cell("import math\n\nimport numpy as np\nfrom labcheck import judge", id="setup", metadata=_meta("setup", locked=True))]
        for dotted, points in graded.items():
            function = dotted.rsplit(".", 1)[1]
            solution = new_code_cell(with_markers(reference_source(dotted)), id=function, metadata=_meta(function, solution=True))
            solution.metadata["backprop_lab"] = {"reference": dotted}
            declaration = ", ".join(f"{kind}={value}" for kind, value in points.items())
            test = new_code_cell(f"# Hidden checks of {function}.\n### BEGIN HIDDEN TESTS\njudge(\"{function}\", {declaration})\n"
                                 "### END HIDDEN TESTS", id=f"test_{function}",
                                 metadata=_meta(f"test_{function}", grade=True, locked=True, points=sum(points.values())))
            cells += [solution, test]
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / name)
    sync(str(course))
    return folder

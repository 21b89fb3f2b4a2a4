"""Synthetic students for the demo: realistic work, blank work, planted mistakes, a hostile hand-in.

Every student hands in what a real one would: the release notebook (no hidden declarations,
no solution markers), with their work typed into its solution cells.

Each buggy student carries mistakes written as exact text edits of the reference solution
cells, with the graded functions they are expected to break. The demo checks that the judge
takes points from exactly those functions and from nothing else.
"""
import dataclasses

import nbformat


@dataclasses.dataclass
class Student:
    name: str
    description: str
    edits: dict           # {assignment: {old text: new text}} applied to the solution cells
    breaks: dict          # {assignment: set of graded functions expected to lose points}
    blank: bool = False
    extra_cells: tuple = ()
    may_break: dict = dataclasses.field(default_factory=dict)  # functions that call a broken one


HOSTILE_CELLS = (
    "import numpy as np\nnp.allclose = lambda *a, **k: True\nnp.isclose = lambda *a, **k: True",
    "ip = get_ipython()\nip.input_transformers_cleanup.append(lambda lines: [l for l in lines if 'assert' not in l])",
    "import os\nfor path in ['../../../gradebook.db', '../../../source', '/etc/shadow']:\n"
    "    print(path, 'visible' if os.path.exists(path) else 'hidden')",
    "import sqlite3\ntry:\n    sqlite3.connect('../../../gradebook.db').execute('UPDATE grade SET manual_score = 100')\n"
    "except Exception as error:\n    print('no gradebook here:', error)",
)

COHORT = [
    Student("ada", "complete reference work", {}, {}),
    Student("blank", "handed in the release untouched", {}, {}, blank=True),
    Student("brook", "forgets the bias and the 1/2 of the MSE; transposes dW", {
        "02-forward-pass": {"out = x @ W + b\n    cache": "out = x @ W\n    cache",
                            "float(0.5 * np.sum((pred - y) ** 2) / N)": "float(np.sum((pred - y) ** 2) / N)"},
        "03-backward-pass": {"dW = x.T @ dout": "dW = (x.T @ dout).T"},
    }, {"02-forward-pass": {"affine_forward", "mse_loss", "mlp_forward"}, "03-backward-pass": {"affine_backward", "mlp_backward", "train_mlp"}}),
    Student("cyril", "Adam without bias correction; clips each array by its own norm; BPTT overwrites dWh", {
        "04-optimizers": {'step_size = config["lr"] / (1 - beta1**t)': 'step_size = config["lr"]',
                          'denom = np.sqrt(v) / np.sqrt(1 - beta2**t) + config["eps"]': 'denom = np.sqrt(v) + config["eps"]'},
        "05-vanishing-gradients": {"scale = min(1.0, max_norm / (total_norm + 1e-6))\n    clipped = {name: grad * scale for name, grad in grads.items()}":
                                   "clipped = {name: grad * min(1.0, max_norm / (np.linalg.norm(grad) + 1e-6)) for name, grad in grads.items()}"},
        "06-bptt": {"        dWh += dWh_t": "        dWh = dWh_t"},
    }, {"04-optimizers": {"adam"}, "05-vanishing-gradients": {"clip_by_global_norm"}, "06-bptt": {"rnn_backward"}},
        may_break={"06-bptt": {"train_rnn"}}),
    Student("mallory", "hands in blank work that patches numpy, IPython and probes the course files",
            {}, {}, blank=True, extra_cells=HOSTILE_CELLS),
]


def _is_solution_code(cell):
    return cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution", False)


def fill_release(source_nb, release_nb):
    """The release as a student hands it in after doing every exercise: each solution cell holds the
    source's solution (the reference), without nbgrader's markers; every other cell is the release's."""
    solutions = {cell.metadata.nbgrader.get("grade_id"): cell.source for cell in source_nb.cells if _is_solution_code(cell)}
    nb = nbformat.from_dict(release_nb)
    for cell in nb.cells:
        if _is_solution_code(cell):
            grade_id = cell.metadata.nbgrader.get("grade_id")
            if grade_id not in solutions:
                raise ValueError(f"release cell {grade_id!r} has no solution cell in the source")
            cell.source = "\n".join(line for line in solutions[grade_id].splitlines()
                                    if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)
    return nb


def build_notebook(student, assignment, source_nb, release_nb):
    """The notebook ``student`` hands in for ``assignment``: the release, with their work in its solution cells."""
    nb = nbformat.from_dict(release_nb) if student.blank else fill_release(source_nb, release_nb)
    for old, new in student.edits.get(assignment, {}).items():
        cells = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution") and old in c.source]
        if len(cells) != 1 or cells[0].source.count(old) != 1:
            raise ValueError(f"demo edit for {student.name}/{assignment} does not match exactly once: {old[:60]!r}")
        cells[0].source = cells[0].source.replace(old, new)
    for source in student.extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb

"""The catalogue of hostile, broken and unusual-but-correct submissions (issue 7).

Each case is one student of a temporary course. ``build(kit)`` returns what the student hands
in; ``expect`` says what must come out of the real pipeline (``backprop-lab autograde``, which
runs nbgrader's autograde with the course's hardened configuration). The table in
``docs/catalogue.md`` is generated from these definitions and the observed results.

Two assignments: ``catalogue`` (one notebook, ``layers.ipynb``: eight forward functions, one
backward function and the ``Value`` class) for the hostile and unusual cases, and ``broken``
(two notebooks) for the broken inputs, so that "the other notebooks are still graded" can be seen.
"""
import dataclasses
import json
import os
from typing import Callable

import nbformat

CATALOGUE = "catalogue"
BROKEN = "broken"
NB = "layers.ipynb"

CATALOGUE_NOTEBOOKS = {NB: {
    "forward_pass.affine_forward": {"value": 2, "no_mutation": 1, "repeat": 1},
    "forward_pass.relu_forward": {"value": 2, "no_mutation": 1, "repeat": 1},
    "forward_pass.tanh_forward": {"value": 2, "repeat": 1},
    "forward_pass.sigmoid_forward": {"value": 2},
    "forward_pass.softmax": {"value": 2},
    "forward_pass.mse_loss": {"value": 2},
    "forward_pass.binary_cross_entropy": {"value": 2},
    "backward_pass.affine_backward": {"gradient": 2, "no_mutation": 1},
    "chain_rule.Value": {"arithmetic": 2, "unary": 2, "reuse": 2, "backward_order": 1},
}}
BROKEN_NOTEBOOKS = {
    "layers.ipynb": {"forward_pass.affine_forward": {"value": 2}, "forward_pass.relu_forward": {"value": 2}},
    "losses.ipynb": {"forward_pass.mse_loss": {"value": 2}, "forward_pass.softmax": {"value": 2}},
}


def full_scores(notebooks):
    return {f"test_{d.rsplit('.', 1)[1]}": float(sum(p.values())) for graded in notebooks.values() for d, p in graded.items()}


FULL = full_scores(CATALOGUE_NOTEBOOKS)
BROKEN_FULL = full_scores(BROKEN_NOTEBOOKS)
AFFINE_BUG = ("out = x @ W + b\n    cache", "out = x @ W\n    cache")   # the bias is dropped: value check lost


def score_summary(scores, full):
    """``total/max``, and each function that scored less than full as ``name got/max``."""
    text = f"{sum(scores.values()):g}/{sum(full.values()):g}"
    lost = [f"{k[len('test_'):]} {scores[k]:g}/{full[k]:g}" for k in full if scores[k] < full[k]]
    if lost and len(lost) < len(full):
        text += f" ({', '.join(lost)})"
    return text


def alternatives(expected):
    """An expected text, or a tuple of texts any one of which will do."""
    return expected if isinstance(expected, tuple) else (expected,)


def ref(**changes):
    """Full marks except the named grade cells (function name → expected score)."""
    return {**FULL, **{f"test_{k}": float(v) for k, v in changes.items()}}


BUG = ref(affine_forward=0)           # the "bug" control: affine_forward loses its value check, and with it its property checks
BLANK = {k: 0.0 for k in FULL}


def broken(**changes):
    return {**BROKEN_FULL, **{f"test_{k}": float(v) for k, v in changes.items()}}


@dataclasses.dataclass
class Case:
    id: str
    group: str                 # hostile | broken | unusual
    title: str                 # what the submission does
    build: Callable            # kit -> {"notebooks": {name: nb | bytes}, "plant": a function(folder) making links or FIFOs}
    scores: dict = None        # expected score of every grade cell (None: nothing is graded)
    at_most: bool = False      # scores are an upper bound (the exploit may break more of its own work)
    messages: dict = dataclasses.field(default_factory=dict)   # grade_id -> text in the judge's message
    output: tuple = ()         # texts the exploit's own cell printed (autograded notebook); a tuple: any of them
    problems: tuple = ()       # texts of the one-line problems the CLI prints for this student
    failed: str = ""           # text of the CLI's ✗ line, when the submission cannot be graded at all

    @property
    def assignment(self):
        return BROKEN if self.group == "broken" else CATALOGUE

    @property
    def expected(self):
        if self.scores is None:
            return f"not graded; ✗ line: {self.failed}"
        text = ("at most " if self.at_most else "") + score_summary(self.scores, BROKEN_FULL if self.group == "broken" else FULL)
        extras = [f"says “{m}”" for m in self.messages.values()]
        extras += ["prints " + " or ".join(f"“{t}”" for t in alternatives(o)) for o in self.output]
        extras += [f"reports “{p}”" for p in self.problems]
        return "; ".join([text] + extras)


# ---- building blocks -------------------------------------------------------------------------
def cell(nb, code, where="start"):
    """``nb`` with a new code cell right after the setup cell (``start``) or at the end."""
    nb = nbformat.from_dict(nb)
    new = nbformat.v4.new_code_cell(code)
    if where == "start":
        nb.cells.insert(2, new)
    else:
        nb.cells.append(new)
    return nb


def function(nb, grade_id, code):
    """``nb`` with the solution cell ``grade_id`` replaced by ``code``."""
    nb = nbformat.from_dict(nb)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            c.source = code
            return nb
    raise KeyError(grade_id)


def replace(nb, old, new):
    nb = nbformat.from_dict(nb)
    hits = [c for c in nb.cells if old in c.source]
    assert len(hits) == 1, (old, len(hits))
    hits[0].source = hits[0].source.replace(old, new)
    return nb


def only(nb, name=NB):
    return {"notebooks": {name: nb}}


# ---- hostile: a wrong answer earns nothing, nothing else changes ----------------------------------
PATCHES = {
    "np_allclose": ("patch np.allclose to always say True", "np.allclose = lambda *a, **k: True"),
    "np_isclose": ("patch np.isclose to always say True", "np.isclose = lambda *a, **k: np.True_"),
    "np_testing": ("turn np.testing.assert_allclose / assert_array_equal / assert_array_almost_equal into no-ops",
                   "np.testing.assert_allclose = np.testing.assert_array_equal = np.testing.assert_array_almost_equal = "
                   "lambda *a, **k: None"),
    "math_isclose": ("patch math.isclose", "import math\nmath.isclose = lambda *a, **k: True"),
    "random_seed": ("pin np.random.seed and np.random.default_rng so hidden inputs would repeat",
                    "_rng = np.random.default_rng\nnp.random.seed = lambda *a, **k: None\n"
                    "np.random.default_rng = lambda *a, **k: _rng(0)"),
    "perf_counter": ("freeze time.perf_counter and time.process_time to dodge time budgets",
                     "import time\ntime.perf_counter = time.process_time = lambda: 0.0"),
    "patch_labcheck": ("patch the course's own checking module (labcheck) in the kernel",
                       "import labcheck, labcheck.checks\nlabcheck.checks.rel_error = lambda *a, **k: 0.0\n"
                       "labcheck.checks.compare = lambda *a, **k: None\nlabcheck.judge = lambda *a, **k: print('full marks')"),
    "fake_grader": ("plant a fake `grader` package in sys.modules",
                    "import sys, types\nfake = types.ModuleType('grader')\nfake.judge = types.ModuleType('grader.judge')\n"
                    "fake.judge.judge_notebook = lambda *a, **k: 'full marks'\n"
                    "sys.modules.update({'grader': fake, 'grader.judge': fake.judge})"),
}

BLANK_HOOKS = {
    "input_transformer": ("an IPython input transformer that drops `assert` lines",
                          "ip = get_ipython()\nip.input_transformers_cleanup.append("
                          "lambda lines: [l for l in lines if not l.lstrip().startswith('assert')])"),
    "showtraceback": ("silence IPython's showtraceback so errors look like success",
                      "get_ipython().showtraceback = lambda *a, **k: None"),
    "custom_exc": ("swallow every exception with set_custom_exc",
                   "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"),
    "excepthook": ("replace sys.excepthook", "import sys\nsys.excepthook = lambda *a: print('all tests passed')"),
    "displayhook": ("replace sys.displayhook to print a perfect score", "import sys\nsys.displayhook = lambda v: print('Score: 100/100')"),
}

RETURNS = {
    "always_equal": ("return an object whose __eq__ is always true",
                     "class Yes:\n    def __eq__(self, other): return True\n    __ne__ = lambda self, other: False\n"
                     "    def __array__(self, *a, **k): return np.zeros((1,))\n"
                     "def relu_forward(z):\n    return Yes(), (z, Yes())\n"),
    "lying_subclass": ("return an ndarray subclass whose comparisons lie",
                       "class Lie(np.ndarray):\n    def __eq__(self, o): return np.ones(self.shape, bool)\n"
                       "    def __sub__(self, o): return np.zeros(self.shape)\n    __rsub__ = __sub__\n"
                       "def relu_forward(z):\n    a = np.zeros_like(z).view(Lie)\n    return a, (z, a)\n"),
    "float_subclass": ("return a float subclass that equals everything",
                       "class F(float):\n    __eq__ = lambda s, o: True\n    __sub__ = __rsub__ = lambda s, o: F(0.0)\n"
                       "    __abs__ = lambda s: F(0.0)\n    __hash__ = float.__hash__\n"
                       "def mse_loss(pred, y):\n    return F(0.0)\n"),
    "array_protocols": ("return an object implementing __array_function__ and __array_ufunc__",
                        "class Duck:\n    shape = None\n    def __array_function__(self, func, types, args, kwargs): return True\n"
                        "    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs): return np.zeros(1)\n"
                        "def relu_forward(z):\n    d = Duck(); d.shape = z.shape\n    return d, (z, d)\n"),
    "masked_array": ("return a fully masked array", "def relu_forward(z):\n    a = np.ma.masked_all(z.shape)\n    return a, (z, a)\n"),
    "nan": ("return NaN everywhere", "def relu_forward(z):\n    a = np.full(z.shape, np.nan)\n    return a, (z, a)\n"),
    "empty": ("return an empty array", "def relu_forward(z):\n    a = np.empty((0,))\n    return a, (z, a)\n"),
    "scalar": ("return a scalar instead of an array", "def relu_forward(z):\n    return 0.0, (z, 0.0)\n"),
    "list": ("return a list instead of an array", "def relu_forward(z):\n    a = [[0.0] * z.shape[1]] * z.shape[0]\n    return a, (z, a)\n"),
    "object_dtype": ("return the right values as an object-dtype array (needs pickle to travel)",
                     "def relu_forward(z):\n    a = np.maximum(z, 0).astype(object)\n    return a, (z, a)\n"),
    "wrong_dtype": ("return the right values rounded into an integer array",
                    "def relu_forward(z):\n    a = np.rint(np.maximum(z, 0)).astype(np.int64)\n    return a, (z, a)\n"),
}

SNOOP = {
    "frame_walk": ("walk sys._getframe() up the stack for arrays to copy",
                   "import sys\ndef relu_forward(z):\n    f, found = sys._getframe(1), None\n    while f is not None and found is None:\n"
                   "        for v in list(f.f_locals.values()):\n"
                   "            if isinstance(v, np.ndarray) and v.shape == z.shape and v is not z:\n                found = v\n"
                   "        f = f.f_back\n    a = found if found is not None else np.zeros_like(z)\n    return a, (z, a)\n"),
    "inspect_stack": ("search inspect.stack() for the expected values",
                      "import inspect\ndef relu_forward(z):\n    found = None\n    for info in inspect.stack():\n"
                      "        for name, v in info.frame.f_locals.items():\n"
                      "            if name in ('expected', 'want', 'reference', 'answer') or "
                      "(isinstance(v, np.ndarray) and v.shape == z.shape and v is not z and (v >= 0).all()):\n"
                      "                found = np.asarray(v, float)\n"
                      "    a = found if found is not None else np.zeros_like(z)\n    return a, (z, a)\n"),
    "gc_scan": ("scan gc.get_objects() for an array with the expected shape",
                "import gc\ndef relu_forward(z):\n    for obj in gc.get_objects():\n"
                "        if isinstance(obj, np.ndarray) and obj.shape == z.shape and obj is not z and (obj >= 0).all():\n"
                "            return obj, (z, obj)\n    a = np.zeros_like(z)\n    return a, (z, a)\n"),
}

LEAK_CELL = r'''
import glob, os
course = {course!r}
paths = ["../../../gradebook.db", "../../gradebook.db", "../gradebook.db", "../../../source", "../../source",
         "../../../release", "../../../submitted", course, course + "/gradebook.db", course + "/source/catalogue/layers.ipynb",
         course + "/submitted/ctl_reference", course + "/autograded", {repo!r} + "/solutions", {repo!r} + "/grader"]
print("LEAKS:", [p for p in paths if os.path.exists(p)])
'''

SQL_CELL = r'''
import sqlite3
for path in ["../../../gradebook.db", {db!r}]:
    try:
        con = sqlite3.connect("file:" + path + "?mode=rw", uri=True)
        con.execute("UPDATE grade SET manual_score = 99")
        con.commit()
        print("SQL: wrote", path)
    except Exception as error:
        print("SQL: refused", type(error).__name__)
'''

OTHERS_CELL = r'''
import os
hits = []
for path in [{course!r} + "/submitted/ctl_reference/catalogue/layers.ipynb", "../ctl_reference/catalogue/layers.ipynb",
             "../../ctl_reference/catalogue/layers.ipynb", {course!r} + "/autograded/ctl_reference"]:
    try:
        open(path, "a").write("tampered")
        hits.append(path)
    except OSError:
        pass
print("TAMPERED:", hits)
'''

JOB_CELL = r'''
import glob, os
found = [p for p in glob.glob("/sandbox/job/**", recursive=True) if "/probes/" in p]
print("HIDDEN INPUTS VISIBLE:", found)
'''

ENV_CELL = r'''
import os
allowed = {{"HOME", "PATH", "LANG", "MPLBACKEND", "MPLCONFIGDIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_PLATFORM_DIRS", "IPYTHONDIR",
           "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BACKPROP_LAB_GRADING",
           "JPY_PARENT_PID", "PYDEVD_USE_FRAME_EVAL", "CLICOLOR", "CLICOLOR_FORCE", "FORCE_COLOR", "PAGER", "GIT_PAGER", "TERM", "PWD",
           "JPY_SESSION_NAME", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SHLVL", "_"}}
print("EXTRA ENV:", sorted(set(os.environ) - allowed))
print("COURSE IN ENV:", any({course!r} in v for v in os.environ.values()))
'''

PROC_CELL = r'''
import os
seen = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            seen.append(open(f"/proc/{{pid}}/cmdline", "rb").read().replace(b"\0", b" ").decode())
        except OSError:
            pass
print("PROCESSES:", len(seen))
print("COURSE IN /proc:", any({course!r} in c or "nbgrader" in c for c in seen))
'''

FAKE_RESULTS_CELL = r'''
import os, json, threading, time, numpy as np
def plant():
    while True:
        for root, dirs, files in os.walk("/sandbox/job/probes"):
            if root.count("/") == 4:
                out = os.path.join(root, "out")
                try:
                    os.makedirs(out, exist_ok=True)
                    json.dump({"kind": "dict", "items": {"status": {"kind": "dict", "items": {"status": {"kind": "str", "value": "ok"}}},
                               "value": {"kind": "float", "value": 0.0}}}, open(os.path.join(out, "structure.json"), "w"))
                except OSError:
                    pass
        time.sleep(0.001)
threading.Thread(target=plant, daemon=True).start()
'''

NETWORK_CELL = r'''
import socket
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    print("NETWORK: open")
except OSError:
    print("NETWORK: blocked")
'''

DAEMON_CELL = r'''
import os, subprocess
subprocess.Popen(["sleep", "4242"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "4243"])
    os._exit(0)
'''

FINITE_DIFFERENCES = '''def affine_backward(dout, cache):
    x, W, b = cache
    grads = []
    for v in (x, W, b):
        g = np.zeros_like(v)
        it = np.nditer(v, flags=["multi_index"])
        for _ in it:
            i = it.multi_index
            old = v[i]
            v[i] = old + 1e-5
            plus = np.sum((x @ W + b) * dout)
            v[i] = old - 1e-5
            minus = np.sum((x @ W + b) * dout)
            v[i] = old
            g[i] = (plus - minus) / 2e-5
        grads.append(g)
    return tuple(grads)
'''


def hostile_cases():
    cases = []
    for key, (title, code) in PATCHES.items():
        cases.append(Case(f"h_{key}", "hostile", f"{title}, with affine_forward wrong (bias dropped)",
                          lambda kit, code=code: only(cell(kit.bug(), code)), scores=BUG,
                          messages={"test_affine_forward": "bias"}))
    cases.append(Case("h_builtins", "hostile", "replace builtins.abs (always 0), len (lies about arrays) and isinstance "
                      "(everything is an ndarray), with affine_forward wrong",
                      lambda kit: only(cell(kit.bug(), "import builtins\n_abs, _len, _isinstance = abs, len, isinstance\n"
                                                        "builtins.abs = lambda x: 0 * _abs(x)\n"
                                                        "builtins.len = lambda x: 0 if _isinstance(x, np.ndarray) else _len(x)\n"
                                                        "builtins.isinstance = lambda o, c: True if c is np.ndarray else _isinstance(o, c)")),
                      scores=BUG, at_most=True))
    for key, (title, code) in BLANK_HOOKS.items():
        cases.append(Case(f"h_{key}", "hostile", f"{title}, on the untouched release", lambda kit, code=code: only(cell(kit.release(), code)),
                          scores=BLANK, messages={"test_relu_forward": "not implemented yet"}))
    for key, (title, code) in RETURNS.items():
        grade = "mse_loss" if key == "float_subclass" else "relu_forward"
        cases.append(Case(f"h_{key}", "hostile", title, lambda kit, code=code, grade=grade: only(function(kit.source(), grade, code)),
                          scores=ref(**{grade: 0})))
    for key, (title, code) in SNOOP.items():
        # Nothing to find: it returns a well-formed wrong array, which earns nothing (the no-mutation
        # and repeat checks pay only together with a right value).
        cases.append(Case(f"h_{key}", "hostile", f"{title} (finds nothing, returns a well-formed wrong array)",
                          lambda kit, code=code: only(function(kit.source(), "relu_forward", code)),
                          scores=ref(relu_forward=0), messages={"test_relu_forward": "✗ value (0 / 2)"}))
    cases += [
        Case("h_read_course", "hostile", "read the gradebook, source/, release/, other students, solutions/ and grader/",
             lambda kit: only(cell(kit.release(), LEAK_CELL.format(course=str(kit.course), repo=str(kit.repo)), "end")),
             scores=BLANK, output=("LEAKS: []",)),
        Case("h_write_gradebook", "hostile", "UPDATE grade SET manual_score = 99 in the gradebook (relative and absolute path)",
             lambda kit: only(cell(kit.release(), SQL_CELL.format(db=str(kit.course / "gradebook.db")), "end")),
             scores=BLANK, output=("SQL: refused",)),
        Case("h_other_students", "hostile", "append to another student's submitted and autograded files",
             lambda kit: only(cell(kit.release(), OTHERS_CELL.format(course=str(kit.course)), "end")),
             scores=BLANK, output=("TAMPERED: []",)),
        Case("h_hidden_inputs", "hostile", "look for the judge's hidden inputs before the checks run",
             lambda kit: only(cell(kit.release(), JOB_CELL)), scores=BLANK, output=("HIDDEN INPUTS VISIBLE: []",)),
        Case("h_environment", "hostile", "read environment variables for secrets and paths",
             lambda kit: only(cell(kit.release(), ENV_CELL.format(course=str(kit.course)))), scores=BLANK,
             output=("EXTRA ENV: []", "COURSE IN ENV: False")),
        Case("h_proc", "hostile", "read /proc for the grader's command lines",
             lambda kit: only(cell(kit.release(), PROC_CELL.format(course=str(kit.course)))), scores=BLANK,
             output=("COURSE IN /proc: False",)),
        Case("h_import_solutions", "hostile", "import the reference package `solutions`",
             lambda kit: only(function(kit.source(), "relu_forward",
                                       "def relu_forward(z):\n    from solutions.forward_pass import relu_forward as r\n    return r(z)\n")),
             scores=ref(relu_forward=0), messages={"test_relu_forward": "ModuleNotFoundError"}),
        Case("h_import_torch", "hostile", "let PyTorch do the work (`import torch`)",
             lambda kit: only(function(kit.source(), "relu_forward",
                                       "def relu_forward(z):\n    import torch\n    a = torch.relu(torch.tensor(z)).numpy()\n"
                                       "    return a, (z, a)\n")),
             scores=ref(relu_forward=0), messages={"test_relu_forward": "ModuleNotFoundError"}),
        Case("h_finite_differences", "hostile", "a backward pass that takes central differences of the forward pass",
             lambda kit: only(function(kit.source(), "affine_backward", FINITE_DIFFERENCES)),
             scores=ref(affine_backward=0), messages={"test_affine_backward": "finite differences"}),
        Case("h_fake_results", "hostile", "a thread that plants fake result files for every probe",
             lambda kit: only(cell(kit.release(), FAKE_RESULTS_CELL)), scores=BLANK),
        Case("h_network", "hostile", "open a network connection", lambda kit: only(cell(kit.release(), NETWORK_CELL, "end")),
             scores=BLANK, output=("NETWORK: blocked",)),
        Case("h_sys_exit", "hostile", "sys.exit() inside relu_forward",
             lambda kit: only(function(kit.source(), "relu_forward", "import sys\ndef relu_forward(z):\n    sys.exit(0)\n")),
             scores=ref(relu_forward=0), messages={"test_relu_forward": "SystemExit"}),
        Case("h_keyboard_interrupt", "hostile", "raise KeyboardInterrupt inside relu_forward",
             lambda kit: only(function(kit.source(), "relu_forward", "def relu_forward(z):\n    raise KeyboardInterrupt\n")),
             scores=ref(relu_forward=0), messages={"test_relu_forward": "KeyboardInterrupt"}),
        Case("h_os_exit", "hostile", "os._exit(0) inside relu_forward",
             lambda kit: only(function(kit.source(), "relu_forward", "import os\ndef relu_forward(z):\n    os._exit(0)\n")),
             scores=ref(relu_forward=0), messages={"test_relu_forward": "kernel died"}),
        Case("h_segfault", "hostile", "a segfault through ctypes inside tanh_forward",
             lambda kit: only(function(kit.source(), "tanh_forward", "import ctypes\ndef tanh_forward(z):\n    ctypes.string_at(0)\n")),
             scores=ref(tanh_forward=0), messages={"test_tanh_forward": "kernel died"}),
        Case("h_fork_bomb", "hostile", "a fork bomb inside softmax",
             lambda kit: only(function(kit.source(), "softmax", "import os\ndef softmax(z):\n    while True:\n        os.fork()\n")),
             scores=ref(softmax=0)),
        Case("h_daemon", "hostile", "a cell that leaves a `sleep` process and a double-forked daemon behind",
             lambda kit: only(cell(kit.source(), DAEMON_CELL, "end")), scores=FULL),
        Case("h_infinite_loop", "hostile", "an endless loop inside tanh_forward",
             lambda kit: only(function(kit.source(), "tanh_forward", "def tanh_forward(z):\n    while True:\n        pass\n")),
             scores=ref(tanh_forward=0), messages={"test_tanh_forward": "did not finish"}),
        Case("h_sleep", "hostile", "time.sleep(10_000) inside sigmoid_forward",
             lambda kit: only(function(kit.source(), "sigmoid_forward", "import time\ndef sigmoid_forward(z):\n    time.sleep(10_000)\n")),
             scores=ref(sigmoid_forward=0), messages={"test_sigmoid_forward": "did not finish"}),
        Case("h_huge_allocation", "hostile", "allocate 50 GB inside mse_loss",
             lambda kit: only(function(kit.source(), "mse_loss", "def mse_loss(pred, y):\n    return float(np.ones(50 * 2**30 // 8).sum())\n")),
             scores=ref(mse_loss=0), messages={"test_mse_loss": "MemoryError"}),
        Case("h_stdout_flood", "hostile", "a cell that prints gigabytes",
             lambda kit: only(cell(kit.source(), "import sys\nfor _ in range(4096):\n    sys.stdout.write('x' * 2**20)\n", "end")),
             scores=FULL, output=(("dropped by the grader", "[grader] the kernel died", "[grader] stopped after"),)),
        Case("h_fill_disk", "hostile", "a cell that writes 1.5 GB of files (into /tmp and the working folder)",
             lambda kit: only(cell(kit.release(), "import os\nblock = b'x' * 2**20\nfor i in range(6):\n"
                                                  "    for folder in ('/tmp', '.'):\n        try:\n"
                                                  "            with open(f'{folder}/fill{i}.bin', 'wb') as f:\n"
                                                  "                for _ in range(128):\n                    f.write(block)\n"
                                                  "        except OSError:\n            pass\n")),
             scores=BLANK),
        Case("h_deep_recursion", "hostile", "unbounded recursion with the recursion limit lifted, inside relu_forward",
             lambda kit: only(function(kit.source(), "relu_forward", "import sys\nsys.setrecursionlimit(10**8)\n"
                                                                   "def relu_forward(z, depth=0):\n    return relu_forward(z, depth + 1)\n")),
             scores=ref(relu_forward=0)),
        Case("h_input", "hostile", "input() inside relu_forward, waiting for a human",
             lambda kit: only(function(kit.source(), "relu_forward", "def relu_forward(z):\n    input('press enter')\n")),
             scores=ref(relu_forward=0)),
    ]
    return cases


# ---- unusual but correct: full marks -----------------------------------------------------------------
STABLE = {
    "sigmoid_forward": "def sigmoid_forward(z):\n    a = 0.5 * (1.0 + np.tanh(0.5 * z))\n    return a, (z, a)\n",
    "softmax": "def softmax(z):\n    shifted = z - z.max(axis=1, keepdims=True)\n"
               "    return np.exp(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))\n",
    "binary_cross_entropy": "def binary_cross_entropy(logits, y):\n"
                            "    losses = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))\n"
                            "    return float(losses.mean())\n",
}

LOOPS = {
    "affine_forward": "def affine_forward(x, W, b):\n    out = np.empty((x.shape[0], W.shape[1]))\n"
                      "    for i in range(x.shape[0]):\n        for j in range(W.shape[1]):\n"
                      "            total = b[j]\n            for k in range(x.shape[1]):\n                total += x[i, k] * W[k, j]\n"
                      "            out[i, j] = total\n    return out, (x, W, b)\n",
    "relu_forward": "def relu_forward(z):\n    a = np.zeros_like(z)\n    for i in range(z.size):\n"
                    "        if z.flat[i] > 0:\n            a.flat[i] = z.flat[i]\n"
                    "    return a, (z, a)\n",
    "affine_backward": "def affine_backward(dout, cache):\n    x, W, b = cache\n    dx = np.zeros_like(x)\n"
                       "    dW = np.zeros_like(W)\n    db = np.zeros_like(b)\n    for i in range(x.shape[0]):\n"
                       "        dx[i] = W @ dout[i]\n        dW += np.outer(x[i], dout[i])\n        db += dout[i]\n"
                       "    return dx, dW, db\n",
}

VALUE_EXTRA = '''
def _sigmoid(self):
    import math
    s = 1.0 / (1.0 + math.exp(-self.data))
    out = Value(s, (self,), "sigmoid")
    def _backward():
        self.grad += s * (1 - s) * out.grad
    out._backward = _backward
    return out


def _zero_grad(self):
    self.grad = 0.0
    return self


Value.sigmoid = _sigmoid
Value.zero_grad = _zero_grad
Value.__hash__ = object.__hash__
Value.describe = lambda self: f"Value(data={self.data:.4g}, grad={self.grad:.4g})"
'''


def unusual_cases():
    def saved_out_of_order(kit):
        nb = kit.source()
        counts = [7, 3, 12, 1, 5]
        for i, c in enumerate(x for x in nb.cells if x.cell_type == "code"):
            c.execution_count = counts[i % len(counts)]
            c.outputs = [nbformat.v4.new_output("error", ename="NameError", evalue="name 'np' is not defined", traceback=[])]
        return only(nb)

    def many(nb, replacements):
        for grade_id, code in replacements.items():
            nb = function(nb, grade_id, code)
        return nb

    return [
        Case("u_stderr_warnings", "unusual", "warnings and prints on stderr, also inside graded functions",
             lambda kit: only(replace(cell(kit.source(), "import sys, warnings\nwarnings.warn('careful')\nprint('note', file=sys.stderr)"),
                                      "a = np.maximum(z, 0)", "import warnings; warnings.warn('relu!')\n    a = np.maximum(z, 0)")),
             scores=FULL),
        Case("u_out_of_order", "unusual", "saved after running cells out of order (odd execution counts, stale error outputs)",
             saved_out_of_order, scores=FULL),
        Case("u_helpers_and_cells", "unusual", "extra helper functions, extra code and markdown cells",
             lambda kit: only(cell(function(cell(kit.source(), "def _rowwise_max(z):\n    return z.max(axis=1, keepdims=True)\n"),
                                            "softmax", "def softmax(z):\n    e = np.exp(z - _rowwise_max(z))\n"
                                                       "    return e / e.sum(axis=1, keepdims=True)\n"),
                                   "# scratch work\nscratch = np.arange(6).reshape(2, 3)\nscratch.T @ scratch", "end")),
             scores=FULL),
        Case("u_loops", "unusual", "plain Python loops instead of vectorised code (slow but inside the limits)",
             lambda kit: only(many(kit.source(), LOOPS)), scores=FULL),
        Case("u_einsum", "unusual", "np.einsum instead of @",
             lambda kit: only(many(kit.source(), {
                 "affine_forward": "def affine_forward(x, W, b):\n    out = np.einsum('nd,dm->nm', x, W) + b\n    return out, (x, W, b)\n",
                 "affine_backward": "def affine_backward(dout, cache):\n    x, W, b = cache\n"
                                    "    return np.einsum('nm,dm->nd', dout, W), np.einsum('nd,nm->dm', x, dout), np.einsum('nm->m', dout)\n"})),
             scores=FULL),
        Case("u_dot", "unusual", "np.dot and ndarray.dot instead of @",
             lambda kit: only(many(kit.source(), {
                 "affine_forward": "def affine_forward(x, W, b):\n    out = np.dot(x, W) + b\n    return out, (x, W, b)\n",
                 "affine_backward": "def affine_backward(dout, cache):\n    x, W, b = cache\n"
                                    "    return dout.dot(W.T), x.T.dot(dout), np.sum(dout, axis=0)\n"})),
             scores=FULL),
        Case("u_inplace_private", "unusual", "in-place work on private copies",
             lambda kit: only(function(kit.source(), "relu_forward",
                                       "def relu_forward(z):\n    a = z.copy()\n    a[a < 0] = 0.0\n    return a, (z.copy(), a.copy())\n")),
             scores=FULL),
        Case("u_stable_formulas", "unusual", "different but equivalent stable formulas (tanh-based sigmoid, log-sum-exp softmax, log1p BCE)",
             lambda kit: only(many(kit.source(), STABLE)), scores=FULL),
        Case("u_debug_prints", "unusual", "debugging prints inside every graded function",
             lambda kit: only(replace(replace(kit.source(), "a = np.tanh(z)", "print('tanh in', z.shape)\n    a = np.tanh(z)"),
                                      "out = x @ W + b\n    cache", "out = x @ W + b\n    print('affine', out.shape)\n    cache")),
             scores=FULL),
        Case("u_open_figures", "unusual", "matplotlib figures drawn and left open",
             lambda kit: only(cell(kit.source(), "import matplotlib.pyplot as plt\nfor k in range(3):\n"
                                                 "    plt.figure(); plt.plot(np.arange(10) ** k)\nplt.show()", "end")),
             scores=FULL),
        Case("u_value_extra_methods", "unusual", "a Value class with extra methods and attributes",
             lambda kit: only(cell(kit.source(), VALUE_EXTRA, "end")), scores=FULL),
        Case("u_type_hints", "unusual", "type hints, docstrings and keyword-only extras with defaults",
             lambda kit: only(function(kit.source(), "relu_forward",
                                       "def relu_forward(z: np.ndarray, *, leak: float = 0.0) -> tuple:\n"
                                       "    \"\"\"ReLU with an optional leak (0 by default).\"\"\"\n"
                                       "    a = np.where(z > 0, z, leak * z)\n    return a, (z, a)\n")),
             scores=FULL),
        Case("u_local_imports", "unusual", "imports inside functions and a numpy alias of its own",
             lambda kit: only(function(kit.source(), "tanh_forward",
                                       "def tanh_forward(z):\n    import numpy as numpy_itself\n    from numpy import tanh\n"
                                       "    a = numpy_itself.asarray(tanh(z))\n    return a, (z, a)\n")),
             scores=FULL),
        Case("u_global_constants", "unusual", "constants and a seeded generator defined in other cells",
             lambda kit: only(function(cell(kit.source(), "HALF = 0.5\nrng = np.random.default_rng(0)\nnp.random.seed(1)"), "mse_loss",
                                       "def mse_loss(pred, y):\n    return float(HALF * np.sum((pred - y) ** 2) / pred.shape[0])\n")),
             scores=FULL),
        Case("u_lambda", "unusual", "a graded function written as a lambda",
             lambda kit: only(function(kit.source(), "relu_forward",
                                       "relu_forward = lambda z: (np.maximum(z, 0), (z, np.maximum(z, 0)))\n")),
             scores=FULL),
        Case("u_unicode", "unusual", "Unicode identifiers and comments in other languages",
             lambda kit: only(function(kit.source(), "sigmoid_forward",
                                       "def sigmoid_forward(z):\n    # σ(z) = 1 / (1 + e^(-z)), écrit sans débordement\n"
                                       "    σ = np.exp(-np.logaddexp(0.0, -z))\n    return σ, (z, σ)\n")),
             scores=FULL),
        Case("u_float_result_types", "unusual", "a loss returned as a NumPy float64 instead of a Python float",
             lambda kit: only(function(kit.source(), "mse_loss",
                                       "def mse_loss(pred, y):\n    return np.float64(0.5 * np.sum((pred - y) ** 2) / pred.shape[0])\n")),
             scores=FULL),
    ]


# ---- broken inputs: one clear line per problem, nothing lost --------------------------------------
def broken_cases():
    def both(kit, **notebooks):
        files = {"layers.ipynb": kit.source("layers.ipynb"), "losses.ipynb": kit.source("losses.ipynb")}
        files.update(notebooks)
        return {"notebooks": {k: v for k, v in files.items() if v is not None}}

    def text(nb):
        return nbformat.writes(nb).encode()

    def v3(kit):
        return both(kit, **{"layers.ipynb": nbformat.writes(nbformat.convert(kit.source("layers.ipynb"), 3)).encode()})

    def deleted(kit):
        nb = kit.source("layers.ipynb")
        nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_relu_forward"]
        return both(kit, **{"layers.ipynb": nb})

    def edited(kit):
        nb = kit.source("layers.ipynb")
        for c in nb.cells:
            if c.metadata.get("nbgrader", {}).get("grade_id") == "test_relu_forward":
                c.source = "print('all good')"
                c.metadata.nbgrader["points"] = 100
        return both(kit, **{"layers.ipynb": nb})

    def cell_types(kit):
        nb = kit.source("layers.ipynb")
        for i, c in enumerate(nb.cells):
            if c.metadata.get("nbgrader", {}).get("grade_id") in ("relu_forward", "test_affine_forward"):
                nb.cells[i] = nbformat.v4.new_markdown_cell(c.source, metadata=c.metadata, id=c.get("id"))
        return both(kit, **{"layers.ipynb": nb})

    def duplicated_ids(kit):
        nb = kit.source("layers.ipynb")
        data = json.loads(nbformat.writes(nb))
        for c in data["cells"]:
            c["id"] = "same-id"
        return both(kit, **{"layers.ipynb": json.dumps(data).encode()})

    def big_output(kit):
        nb = kit.source("layers.ipynb")
        code = [c for c in nb.cells if c.cell_type == "code"][0]
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * (200 * 2**20))]
        return both(kit, **{"layers.ipynb": nb})

    def non_utf8(kit):
        raw = nbformat.writes(function(kit.source("layers.ipynb"), "relu_forward",
                                       "def relu_forward(z):\n    # café\n    a = np.maximum(z, 0)\n    return a, (z, a)\n"))
        return both(kit, **{"layers.ipynb": raw.encode("latin-1")})

    return [
        Case("b_invalid_json", "broken", "layers.ipynb cut short (invalid JSON)",
             lambda kit: both(kit, **{"layers.ipynb": text(kit.source("layers.ipynb"))[:len(text(kit.source("layers.ipynb"))) // 2]}),
             scores=broken(affine_forward=0, relu_forward=0), problems=("layers.ipynb: is not valid JSON",)),
        Case("b_nbformat_v3", "broken", "layers.ipynb saved in the old notebook format 3", v3,
             scores=BROKEN_FULL, problems=("layers.ipynb: is in the old notebook format 3; converted",)),
        Case("b_renamed", "broken", "layers.ipynb handed in as 'layers (1).ipynb'",
             lambda kit: both(kit, **{"layers.ipynb": None, "layers (1).ipynb": kit.source("layers.ipynb")}),
             scores=broken(affine_forward=0, relu_forward=0),
             problems=("layers.ipynb: is missing from the submission; it scores 0; layers (1).ipynb holds its cells",)),
        Case("b_missing", "broken", "layers.ipynb not handed in", lambda kit: both(kit, **{"layers.ipynb": None}),
             scores=broken(affine_forward=0, relu_forward=0), problems=("layers.ipynb: is missing from the submission",)),
        Case("b_extra_notebook", "broken", "an extra notebook (scratch.ipynb) beside the two expected",
             lambda kit: both(kit, **{"scratch.ipynb": nbformat.v4.new_notebook()}),
             scores=BROKEN_FULL, problems=("scratch.ipynb: is not a notebook of this assignment; ignored",)),
        Case("b_deleted_grade_cell", "broken", "the grade cell of relu_forward deleted", deleted,
             scores=BROKEN_FULL, problems=("grade cell(s) test_relu_forward were deleted; put back",)),
        Case("b_edited_grade_cell", "broken", "a grade cell's source replaced and its points raised to 100", edited,
             scores=BROKEN_FULL, problems=("cell test_relu_forward: its points (2 → 100) and its locked source changed",)),
        Case("b_changed_cell_types", "broken", "a solution cell and a grade cell turned into markdown", cell_types,
             scores=BROKEN_FULL, problems=("cell relu_forward: its type (code → markdown) changed",)),
        Case("b_duplicated_ids", "broken", "every cell with the same id", duplicated_ids,
             scores=BROKEN_FULL, problems=("has duplicated cell ids",)),
        Case("b_big_output", "broken", "a saved output of 200 MB", big_output,
             scores=BROKEN_FULL, problems=("layers.ipynb: is 200 MB",)),
        Case("b_non_utf8", "broken", "layers.ipynb re-saved as Latin-1 (not UTF-8)", non_utf8,
             scores=broken(affine_forward=0, relu_forward=0), problems=("layers.ipynb: is not UTF-8 text",)),
        Case("b_not_a_notebook", "broken", "losses.ipynb is a PDF renamed",
             lambda kit: both(kit, **{"losses.ipynb": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"}),
             scores=broken(mse_loss=0, softmax=0), problems=("losses.ipynb: is not UTF-8 text",)),
        Case("b_empty_file", "broken", "losses.ipynb is an empty file", lambda kit: both(kit, **{"losses.ipynb": b""}),
             scores=broken(mse_loss=0, softmax=0), problems=("losses.ipynb: is an empty file",)),
        Case("b_json_not_notebook", "broken", "losses.ipynb holds JSON that is not a notebook",
             lambda kit: both(kit, **{"losses.ipynb": b'{"answer": 42}'}),
             scores=broken(mse_loss=0, softmax=0), problems=("losses.ipynb: is JSON but not a Jupyter notebook",)),
        Case("b_empty_folder", "broken", "an empty submission folder", lambda kit: {"notebooks": {}},
             scores=None, failed="the submission folder holds no notebook"),
    ]


# ---- intake: links, special files and nbgrader metadata tricks (issue 12) --------------------------
# "plant" makes, in the submission folder, what a notebook cannot carry: links, FIFOs. Each link,
# FIFO or device is moved into quarantine/ before nbgrader copies the folder, and reported.
def _plant(*entries):
    """A ``plant(folder)`` making each ``(name, target)``: a symbolic link to target, or a FIFO when target is None."""
    def plant(folder):
        for name, target in entries:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if target is None:
                os.mkfifo(path)
            else:
                os.symlink(target, path)
    return plant


def _nbgrader_cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _meta(grade_id, **flags):
    return {"nbgrader": {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3, "solution": False,
                         "task": False, **flags}}


def intake_cases():
    def planted(*entries):
        return lambda kit: {"notebooks": {NB: kit.source()}, "plant": _plant(*entries)}

    def edited(change):
        def build(kit):
            nb = kit.source()
            change(nb)
            return only(nb)
        return build

    def foreign(nb):
        nb.cells.append(nbformat.v4.new_code_cell("print('free points')", metadata=_meta("free_points", grade=True, locked=True, points=100)))

    def duplicate(kit):
        nb = kit.source()
        copy = nbformat.from_dict(json.loads(json.dumps(_nbgrader_cell(kit.release(), "test_relu_forward"))))
        copy.id = "copied-grade-cell"
        nb.cells.insert(2, copy)
        return only(nb)

    def markdown_task(nb):
        nb.cells.append(nbformat.v4.new_markdown_cell("I did all the work.", metadata=_meta("my_task", task=True, points=50)))

    def markdown_grade(nb):
        nb.cells.insert(1, nbformat.v4.new_markdown_cell("Softmax is done.", metadata=_meta("test_softmax", grade=True, solution=True, points=2)))

    def grade_also_solution(nb):
        _nbgrader_cell(nb, "test_relu_forward").metadata.nbgrader["solution"] = True

    def solution_graded(nb):
        _nbgrader_cell(nb, "relu_forward").metadata.nbgrader.update(grade=True, points=10)

    def points(nb):
        _nbgrader_cell(nb, "test_relu_forward").metadata.nbgrader["points"] = 100

    def own_markers(nb):
        _nbgrader_cell(nb, "relu_forward").source += ("\n### BEGIN HIDDEN TESTS\nassert relu_forward(np.array([[-1.0, 2.0]]))[0].tolist() "
                                                    "== [[0.0, 2.0]]\n### END HIDDEN TESTS\n")
        nb.cells.append(nbformat.v4.new_markdown_cell("My own checks sit between ### BEGIN HIDDEN TESTS and its end marker."))

    def deleted_with_solution(kit):
        nb = kit.source("layers.ipynb")
        nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in ("relu_forward", "test_relu_forward")]
        return {"notebooks": {"layers.ipynb": nb, "losses.ipynb": kit.source("losses.ipynb")}}

    def notebook_link(kit):
        return {"notebooks": {"losses.ipynb": kit.source("losses.ipynb")},
                "plant": _plant(("layers.ipynb", "/proc/self/cwd/source/broken/layers.ipynb"))}

    moved = "; moved to quarantine/submitted/"
    return [
        Case("h_link_gradebook", "hostile", "a symbolic link to the gradebook (notes.db -> ../../../gradebook.db) beside the notebook",
             planted(("notes.db", "../../../gradebook.db")), scores=FULL,
             problems=("notes.db: is a symbolic link (to ../../../gradebook.db)" + moved,)),
        Case("h_link_proc_source", "hostile", "a symbolic link through /proc/self/cwd to the course's source/ folder",
             planted(("course", "/proc/self/cwd/source")), scores=FULL,
             problems=("course: is a symbolic link (to /proc/self/cwd/source)" + moved,)),
        Case("h_fifo", "hostile", "a FIFO among the files (data.bin) and one as timestamp.txt, which nbgrader reads",
             planted(("data.bin", None), ("timestamp.txt", None)), scores=FULL,
             problems=("data.bin: is a named pipe (FIFO)" + moved, "timestamp.txt: is a named pipe (FIFO)" + moved)),
        Case("h_link_dev_zero", "hostile", "a symbolic link to /dev/zero (weights.npy -> /dev/zero)",
             planted(("weights.npy", "/dev/zero")), scores=FULL,
             problems=("weights.npy: is a symbolic link (to /dev/zero)" + moved,)),
        Case("h_folder_link", "hostile", "a sub-folder that is a link to source/, and a link to the gradebook inside a real sub-folder",
             planted(("data", "../../../source"), ("extra/inner.db", "/proc/self/cwd/gradebook.db")), scores=FULL,
             problems=("data: is a symbolic link (to ../../../source)" + moved,
                       "extra/inner.db: is a symbolic link (to /proc/self/cwd/gradebook.db)" + moved)),
        Case("h_foreign_grade_cell", "hostile", "an extra locked grade cell worth 100 points, with a grade id the source does not have",
             edited(foreign), scores=FULL,
             problems=("cell free_points is not a cell of the source notebook; its nbgrader metadata was removed",)),
        Case("h_duplicate_grade_id", "hostile", "a copy of relu_forward's grade cell as released (same grade id) placed before the function",
             duplicate, scores=FULL,
             problems=("cell test_relu_forward appears 2 times; the one in the source's place keeps it",)),
        Case("h_markdown_task_cell", "hostile", "a markdown cell flagged as an nbgrader task worth 50 points",
             edited(markdown_task), scores=FULL, problems=("cell my_task is not a cell of the source notebook",)),
        Case("h_markdown_grade_cell", "hostile", "a markdown cell given softmax's grade id, as a graded answer",
             edited(markdown_grade), scores=FULL, problems=("cell test_softmax appears 2 times",)),
        Case("h_grade_cell_solution", "hostile", "relu_forward's grade cell also flagged as a solution (so that its text would be kept)",
             edited(grade_also_solution), scores=FULL,
             problems=("cell test_relu_forward: its flags (solution on) changed; the source's version is used",)),
        Case("h_solution_graded", "hostile", "relu_forward's solution cell flagged as a grade cell worth 10 points",
             edited(solution_graded), scores=FULL, problems=("cell relu_forward: its flags (grade on) changed",)),
        Case("h_changed_points", "hostile", "the points of relu_forward's grade cell raised from 4 to 100",
             edited(points), scores=FULL, problems=("cell test_relu_forward: its points (4 → 100) changed",)),
        Case("u_hidden_tests_marker", "unusual", "the student's own checks between ### BEGIN HIDDEN TESTS / ### END HIDDEN TESTS "
             "in a solution cell, and the marker in a markdown cell (feedback keeps both)", edited(own_markers), scores=FULL),
        Case("b_deleted_solution_and_grade_cell", "broken", "relu_forward's solution cell and its grade cell both deleted",
             deleted_with_solution, scores=broken(relu_forward=0),
             problems=("grade cell(s) test_relu_forward were deleted; put back from the source and graded",)),
        Case("b_notebook_symlink", "broken", "layers.ipynb handed in as a symbolic link to the source notebook (through /proc/self/cwd)",
             notebook_link, scores=broken(affine_forward=0, relu_forward=0),
             problems=("layers.ipynb: is a symbolic link (to /proc/self/cwd/source/broken/layers.ipynb)" + moved,
                       "layers.ipynb: is missing from the submission; it scores 0")),
    ]


# ---- the channel back from the sandbox (issue 12): nothing the kernel writes is taken after the fact ----
FORGE_REPORT_CELL = r"""
import base64, json, os, threading, time
def forge():
    while True:
        try:
            json.dump({"cells": [{"failed": False, "note": "", "outputs": [{"output_type": "display_data", "metadata": {},
                       "data": {"text/html": "<script>window.pwned=1</script>"}}]}], "restarts": 0, "fatal": ""},
                      open("/sandbox/job/cells.json", "w"))
            for root, dirs, files in os.walk("/sandbox/job/probes"):
                for name in ("outcome.json", "result.bin", "value.bin"):
                    open(os.path.join(root, name), "w").write('{"status": "ok"}')
        except OSError:
            pass
        time.sleep(0.002)
threading.Thread(target=forge, daemon=True).start()
print("FORGING")
"""

FORGE_MESSAGES_CELL = r"""
import base64, threading, time
from IPython.display import publish_display_data
def forge():
    while True:
        publish_display_data({"application/x-backprop-lab-result": base64.b64encode(b"BPLC\x00\x01forged").decode()})
        time.sleep(0.01)
threading.Thread(target=forge, daemon=True).start()
print("FORGING MESSAGES")
"""

# Well-framed bundles that break every limit of grader.sandbox.codec, sent IN PLACE of each probe's real
# result (the cell replaces the function the probes publish with); correct work otherwise, so a grader
# that read any of them as a value, crashed, or ran out of memory would show in the scores.
CODEC_BOMB_CELL = r"""
import base64, itertools, json, struct
import IPython.display

def bundle(tree, tail=b""):
    text = json.dumps(tree, separators=(",", ":")).encode() if not isinstance(tree, bytes) else tree
    return b"BPLC\x00\x01" + struct.pack("<I", len(text)) + text + tail

ok = lambda value: ["D", "status", ["D", "status", "sok"], "value", value]
bombs = itertools.cycle([
    bundle(b"[" * 200_000 + b"]" * 200_000),                                      # nesting far past MAX_DEPTH
    bundle(ok(["A", "<f8", 2**31, 2**31])),                                       # 32 EiB declared, no bytes sent
    bundle(ok("i" + "f" * 1_000_000)),                                            # a million-digit int
    bundle(ok(["L"] + ["s"] * 150_000)),                                          # more values than MAX_NODES
    bundle(ok(["A", "|O", 1]), b"\x00" * 8),                                      # an object array
    bundle(b"\xff\xfe not json"),                                                # bytes that are no JSON
    bundle(ok(["A", "<f8", 3]), b"\x00" * 8),                                     # shorter than its shape says
])
original = IPython.display.publish_display_data

def publish(data, *args, **kwargs):
    if "application/x-backprop-lab-result" in data:
        data = {"application/x-backprop-lab-result": base64.b64encode(next(bombs)).decode()}
    return original(data, *args, **kwargs)

IPython.display.publish_display_data = publish
print("CODEC BOMBS ARMED")
"""

KILL_RUNNER_CELL = "import os, signal\nprint('KILLING THE RUNNER', flush=True)\nos.kill(os.getppid(), signal.SIGKILL)\n"

HTML_OUTPUT_CELL = ("from IPython.display import HTML, Javascript, display\n"
                    "display(HTML('<img src=x onerror=\"window.pwned=1\">'))\ndisplay(Javascript('window.pwned=1'))\n"
                    "print('SHOWN AS TEXT ONLY')\n")


def channel_cases():
    return [
        Case("h_forge_report", "hostile", "a thread that keeps rewriting the runner's report and every probe's result files "
             "(with script in the forged outputs)", lambda kit: only(cell(kit.release(), FORGE_REPORT_CELL)), scores=BLANK,
             output=("FORGING",)),
        Case("h_forge_result_messages", "hostile", "a thread that keeps sending forged result messages while the probes run",
             lambda kit: only(cell(kit.release(), FORGE_MESSAGES_CELL)), scores=BLANK),
        Case("h_codec_bombs", "hostile", "replaces every probe's result with a well-framed bundle that breaks a codec limit "
             "(deep nesting, a 32 EiB array, a million-digit int, too many values, object dtype, no JSON, short data; "
             "correct work otherwise)", lambda kit: only(cell(kit.source(), CODEC_BOMB_CELL, "end")), scores=BLANK,
             output=("CODEC BOMBS ARMED",), messages={"test_relu_forward": "could not be read"}),
        Case("h_kill_runner", "hostile", "kill the grader's runner from a cell (correct work otherwise)",
             lambda kit: only(cell(kit.source(), KILL_RUNNER_CELL, "end")), scores=BLANK,
             messages={"test_relu_forward": "runner stopped"}),
        Case("h_html_outputs", "hostile", "outputs of HTML with an onerror handler and JavaScript (correct work otherwise)",
             lambda kit: only(cell(kit.source(), HTML_OUTPUT_CELL, "end")), scores=FULL, output=("SHOWN AS TEXT ONLY",)),
    ]


def all_cases():
    return hostile_cases() + broken_cases() + unusual_cases() + intake_cases() + channel_cases()

"""``backprop-lab similarity`` on a synthetic 06 cohort: a renamed copy stands out, the natural way does not."""
import csv
import subprocess
import sys

import nbformat
from nbgrader.preprocessors import ClearSolutions

from grader.instructor import cohort, similarity
from tests import pipeline

ASSIGNMENT, NAME = "06-bptt", "bptt.ipynb"

# Dan's own BPTT (correct, written his way) and Eve's copy of it: every name changed, comments
# rewritten, blank lines moved. Fay writes BPTT her own (third) way.
DAN = '''def rnn_backward(dh, cache):
    x, h0, Wx, Wh, h = cache
    N, T, D = x.shape
    H = h0.shape[1]
    grads_x = np.zeros((N, T, D))
    grad_Wx = np.zeros((D, H)); grad_Wh = np.zeros((H, H)); grad_b = np.zeros(H)
    carried = np.zeros((N, H))
    t = T - 1
    while t >= 0:
        total = dh[:, t, :] + carried          # what reaches h_t
        local = total * (1.0 - h[:, t, :] * h[:, t, :])
        previous = h[:, t - 1, :] if t > 0 else h0
        grads_x[:, t, :] = np.dot(local, Wx.T)
        grad_Wx = grad_Wx + np.dot(x[:, t, :].T, local)
        grad_Wh = grad_Wh + np.dot(previous.T, local)
        grad_b = grad_b + np.sum(local, axis=0)
        carried = np.dot(local, Wh.T)
        t = t - 1
    return grads_x, carried, grad_Wx, grad_Wh, grad_b
'''
EVE = '''def rnn_backward(dh, cache):
    inputs, start, A, B, states = cache

    n, steps, d = inputs.shape
    k = start.shape[1]
    g_in = np.zeros((n, steps, d))
    gA = np.zeros((d, k)); gB = np.zeros((k, k)); gc = np.zeros(k)
    back = np.zeros((n, k))
    s = steps - 1
    while s >= 0:
        # gradient arriving at this state
        arriving = dh[:, s, :] + back
        pre = arriving * (1.0 - states[:, s, :] * states[:, s, :])
        before = states[:, s - 1, :] if s > 0 else start
        g_in[:, s, :] = np.dot(pre, A.T)

        gA = gA + np.dot(inputs[:, s, :].T, pre)
        gB = gB + np.dot(before.T, pre)
        gc = gc + np.sum(pre, axis=0)
        back = np.dot(pre, B.T)
        s = s - 1
    return g_in, back, gA, gB, gc
'''
FAY = '''def rnn_backward(dh, cache):
    x, h0, Wx, Wh, h = cache
    hs = np.concatenate([h0[:, None, :], h], axis=1)      # h_0 .. h_T
    dzs = []
    flow = 0
    for t in range(x.shape[1], 0, -1):
        dz = (dh[:, t - 1] + flow) * (1 - hs[:, t] ** 2)
        flow = dz @ Wh.T
        dzs.insert(0, dz)
    dz_all = np.stack(dzs, axis=1)                         # (N, T, H)
    dx = np.einsum("nth,dh->ntd", dz_all, Wx)
    dWx = np.einsum("ntd,nth->dh", x, dz_all)
    dWh = np.einsum("ntk,nth->kh", hs[:, :-1], dz_all)
    db = dz_all.sum(axis=(0, 1))
    return dx, flow, dWx, dWh, db
'''


def _hand_in(course, student, nb):
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / NAME)


def _cohort(tmp_path):
    course = pipeline.make_course(tmp_path, [ASSIGNMENT])
    source = nbformat.read(course / "source" / ASSIGNMENT / NAME, as_version=4)
    release = ClearSolutions().preprocess(nbformat.from_dict(source), {})[0]
    reference = cohort.fill_release(source, release)
    for student in ("ada", "ben", "cat", "gus", "hal"):            # the natural way, written alike by most
        _hand_in(course, student, reference)
    for student, text in (("dan", DAN), ("eve", EVE), ("fay", FAY)):
        nb = nbformat.from_dict(reference)
        [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "rnn_backward"]
        cell.source = text
        _hand_in(course, student, nb)
    _hand_in(course, "ivy", release)                                  # blank: shares only the release
    return course


def test_a_renamed_copy_ranks_first_and_shared_reference_style_work_and_the_release_do_not_count(tmp_path):
    course = _cohort(tmp_path)
    pairs, html_path, csv_path, problems = similarity.report(course, ASSIGNMENT, tmp_path / "out")
    assert problems == []
    first = pairs[0]
    assert (first.a, first.b) == ("dan", "eve") and first.score >= 0.6, [(p.a, p.b, round(p.score, 2)) for p in pairs[:5]]
    assert set(first.functions) == {"rnn_backward"} and first.functions["rnn_backward"][0] > 0.8
    rest = {(p.a, p.b): p.score for p in pairs[1:]}
    assert max(rest.values()) < 0.6, sorted(rest.items(), key=lambda i: -i[1])[:5]
    # Only release text and the class's common code tie the blank hand-in to anyone.
    assert all(score == 0 for (a, b), score in rest.items() if "ivy" in (a, b))
    assert rest[("dan", "fay")] < 0.2 and rest[("eve", "fay")] < 0.2       # independent work, same algorithm

    page = html_path.read_text()
    assert similarity.LEAD in page and "default-src 'none'" in page and "<mark>" in page
    assert "dan &amp; eve" in page and "ada &amp; ben" not in page   # pairs sharing nothing unusual: CSV only
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(pairs) == 36 and rows[0]["student_a"] == "dan" and rows[0]["student_b"] == "eve"
    assert rows[0]["shared_functions"].startswith("rnn_backward:")


def test_hostile_code_is_escaped_and_broken_notebooks_are_reported_not_fatal(tmp_path):
    course = _cohort(tmp_path)
    nb = nbformat.read(course / "submitted" / "eve" / ASSIGNMENT / NAME, as_version=4)
    [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "rnn_backward"]
    cell.source = cell.source.replace("# gradient arriving at this state", "# </pre><script>alert(1)</script>")
    nbformat.write(nb, course / "submitted" / "eve" / ASSIGNMENT / NAME)
    (course / "submitted" / "ivy" / ASSIGNMENT / NAME).write_text("{ not a notebook")
    (course / "submitted" / "jo" / ASSIGNMENT).mkdir(parents=True)
    (course / "submitted" / "jo" / ASSIGNMENT / NAME).symlink_to(course / "source" / ASSIGNMENT / NAME)

    result = subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(course), "similarity",
                             ASSIGNMENT, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1. dan & eve" in result.stdout and "lead for a human reader" in result.stdout
    assert "ivy/06-bptt/bptt.ipynb: not compared" in result.stdout
    assert "jo/06-bptt/bptt.ipynb: not compared" in result.stdout and "symbolic link" in result.stdout
    page = (tmp_path / "out" / f"similarity-{ASSIGNMENT}.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page

"""``backprop-lab similarity``: which students' solution cells share unusually much code.

A lead for a human reader, never a verdict. Students who follow the same notebook write alike,
so the report is built to show only what is *unusual*:

* only the solution cells are compared (by their nbgrader grade id, function with function);
  every other cell of the notebook is the release's and never counts;
* the release's own text of each solution cell (signature, docstring, stub) is boilerplate, and
  so is every other code cell of the release;
* code that more than half the class shares (``--common``) is boilerplate too: the natural way
  to write a three-line formula is not evidence;
* a pair's score weights each function by its length: shared tokens over all compared tokens,
  summed over functions, so one long function written alike weighs more than many short ones,
  and a function shorter than ``--min-tokens`` on either side is left out.

The fingerprints are copydetect's (winnowing over a Pygments token stream in which every name
becomes ``V``, so renaming variables changes nothing); the highlighting of the shared code is
copydetect's too, HTML-escaped. Outputs: ``similarity-ASSIGNMENT.html`` (the most similar pairs,
shared code highlighted side by side) and ``similarity-ASSIGNMENT.csv`` (every compared pair).
"""
import csv
import dataclasses
import html
import io
import itertools
from collections import Counter, defaultdict
from pathlib import Path

import nbformat

from .. import safe_io
from ..course import submissions
from .export import csv_safe

NOTEBOOK_MAX_BYTES = 32 * 2**20
NOISE = 25            # copydetect's k: shared runs shorter than this many filtered tokens are noise
WINDOW = 4            # copydetect's winnowing window (its default guarantee threshold 25 - 25 + 1 = 1 is exhaustive)
LEAD = ("A lead for a human reader, never a verdict. High similarity has innocent causes (a shared study group, "
        "the same tutorial, a hint followed to the letter); read the code side by side and talk to the students "
        "before drawing any conclusion.")


@dataclasses.dataclass
class Pair:
    a: str
    b: str
    score: float                   # shared tokens / compared tokens, both sides, all compared functions
    shared: int                    # shared filtered tokens (a's side + b's side) / 2
    functions: dict                # {function: (similarity, highlighted a, highlighted b)} of shared functions


def _is_solution(cell):
    return cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution", False)


def _solution_cells(nb):
    return {cell.metadata["nbgrader"].get("grade_id"): cell.source for cell in nb.cells if _is_solution(cell)}


def _release_notebook(course, assignment, source_path):
    """What the students were given: the release if it was generated, else the source with solutions cleared."""
    released = course / "release" / assignment / source_path.name
    if released.is_file():
        return nbformat.read(released, as_version=4)
    from nbgrader.preprocessors import ClearSolutions
    nb = nbformat.read(source_path, as_version=4)
    return ClearSolutions().preprocess(nb, {})[0]


def _read_student(course, assignment, student, name, problems):
    """A student's notebook: the autograded copy (intake repaired its metadata), else the submitted one."""
    for stage in ("autograded", "submitted"):
        path = course / stage / student / assignment / name
        if not path.exists() and not path.is_symlink():
            continue
        try:
            return nbformat.reads(safe_io.read_regular(path, NOTEBOOK_MAX_BYTES).decode("utf-8"), as_version=4)
        except Exception as error:  # a broken or hostile notebook: reported, never fatal
            problems.append(f"{student}/{assignment}/{name}: not compared ({safe_io.shown(str(error), 160)})")
            return None
    return None


def _fingerprint(code, boilerplate):
    from copydetect.detector import CodeFingerprint
    return CodeFingerprint("cell.py", NOISE, WINDOW, boilerplate=boilerplate, fp=io.StringIO(code))


def _hashes(code):
    import numpy as np
    if not code.strip():
        return np.array([], dtype=np.int64)
    return np.array(sorted(_fingerprint(code, None).hashes), dtype=np.int64)


def compare(course, assignment, *, common=0.5, min_tokens=40, students=None):
    """(pairs sorted by score, best first; the functions compared; problem lines)."""
    import numpy as np
    from copydetect.detector import compare_files
    from copydetect.utils import highlight_overlap

    course = Path(course)
    problems = []
    code = defaultdict(dict)        # function -> {student: source}
    boiler = defaultdict(list)      # function -> hashes of what the release gives
    refused = []
    handed_in = [student for _, student in submissions(course, [assignment], students, refused=refused)]
    problems += [f"{name}/{where}: not compared ({reason})" for where, name, reason in refused]
    for source_path in sorted((course / "source" / assignment).glob("*.ipynb")):
        release = _release_notebook(course, assignment, source_path)
        given = "\n\n".join(c.source for c in release.cells if c.cell_type == "code")
        for function, stub in _solution_cells(release).items():
            boiler[function] = [_hashes(stub), _hashes(given)]
        for student in handed_in:
            nb = _read_student(course, assignment, student, source_path.name, problems)
            if nb is None:
                continue
            for function, text in _solution_cells(nb).items():
                if function in boiler:
                    code[function][student] = text

    prints = defaultdict(dict)      # function -> {student: CodeFingerprint}
    for function, by_student in code.items():
        given = np.unique(np.concatenate(boiler[function]))
        first = {s: _fingerprint(text, given) for s, text in by_student.items()}
        counts = Counter(h for fp in first.values() for h in fp.hashes)
        widespread = [h for h, n in counts.items() if n > common * len(first) and len(first) > 2]
        boilerplate = np.unique(np.concatenate([given, np.array(widespread, dtype=np.int64)]))
        prints[function] = {s: _fingerprint(text, boilerplate) for s, text in by_student.items()}

    everyone = sorted({s for by_student in prints.values() for s in by_student})
    pairs = []
    for a, b in itertools.combinations(everyone, 2):
        shared = compared = 0
        functions = {}
        for function, by_student in prints.items():
            if a not in by_student or b not in by_student:
                continue
            fa, fb = by_student[a], by_student[b]
            if min(fa.token_coverage, fb.token_coverage) < min_tokens:
                continue
            compared += fa.token_coverage + fb.token_coverage
            overlap, (sim_a, sim_b), (slices_a, slices_b) = compare_files(fa, fb)
            if not overlap:
                continue
            shared += min(sim_a, 1.0) * fa.token_coverage + min(sim_b, 1.0) * fb.token_coverage
            left, _ = highlight_overlap(fa.raw_code, slices_a, "<mark>", "</mark>", escape_html=True)
            right, _ = highlight_overlap(fb.raw_code, slices_b, "<mark>", "</mark>", escape_html=True)
            functions[function] = ((sim_a + sim_b) / 2, left, right)
        pairs.append(Pair(a, b, shared / compared if compared else 0.0, round(shared / 2), functions))
    pairs.sort(key=lambda p: (-p.score, -p.shared, p.a, p.b))
    return pairs, sorted(prints), problems


def write_csv(pairs, path):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "student_a", "student_b", "similarity", "shared_tokens", "shared_functions"])
        for rank, pair in enumerate(pairs, 1):
            shared = ";".join(f"{f}:{s:.2f}" for f, (s, _, _) in sorted(pair.functions.items(), key=lambda i: -i[1][0]))
            writer.writerow([rank, csv_safe(pair.a), csv_safe(pair.b), f"{pair.score:.3f}", pair.shared, shared])


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
.lead{background:#fff4d6;border-left:4px solid #d9a400;padding:.6em 1em}
table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}
.flag{font-weight:bold;color:#a03000}.side{display:grid;grid-template-columns:1fr 1fr;gap:1em}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:12px}mark{background:#ffc8a8}"""


def write_html(assignment, pairs, functions, path, *, threshold, top, problems=()):
    e = html.escape
    shown = [pair for pair in pairs[:top] if pair.score > 0]
    rows = []
    for rank, pair in enumerate(shown, 1):
        flag = " class='flag'" if pair.score >= threshold else ""
        rows.append(f"<tr{flag}><td>{rank}</td><td><a href='#pair-{rank}'>{e(pair.a)} &amp; {e(pair.b)}</a></td>"
                    f"<td>{100 * pair.score:.0f}%</td><td>{pair.shared}</td><td>{len(pair.functions)}</td></tr>")
    sections = []
    for rank, pair in enumerate(shown, 1):
        if not pair.functions:
            continue
        parts = [f"<h2 id='pair-{rank}'>{rank}. {e(pair.a)} &amp; {e(pair.b)}: {100 * pair.score:.0f}% shared</h2>"]
        for function, (sim, left, right) in sorted(pair.functions.items(), key=lambda i: -i[1][0]):
            parts.append(f"<h3>{e(function)} ({100 * sim:.0f}% of its code)</h3><div class='side'>"
                         f"<div><b>{e(pair.a)}</b><pre>{left}</pre></div><div><b>{e(pair.b)}</b><pre>{right}</pre></div></div>")
        sections.append("\n".join(parts))
    notes = "".join(f"<li>{e(line)}</li>" for line in problems)
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Similarity: {e(assignment)}</title><style>{STYLE}</style></head><body>
<h1>Similarity of solution cells: {e(assignment)}</h1>
<p class="lead">{e(LEAD)}</p>
<p>{len(pairs)} pairs compared over {len(functions)} graded functions. Shown: the {len(shown)} most similar that share any
code beyond the release and the class's common code (every pair is in the CSV); pairs at or above {100 * threshold:.0f}% are in bold. The release's code and code shared by most of the class are not
counted; marked code is what the two share.</p>
<table><tr><th>rank</th><th>pair</th><th>similarity</th><th>shared tokens</th><th>functions sharing code</th></tr>
{''.join(rows)}</table>
{'<h2>Not compared</h2><ul>' + notes + '</ul>' if notes else ''}
{''.join(sections)}
</body></html>"""
    Path(path).write_text(page, encoding="utf-8")


def report(course, assignment, out_dir, *, threshold=0.6, top=25, common=0.5, min_tokens=40, students=None):
    """Write the HTML and CSV; returns (pairs, html path, csv path, problems)."""
    pairs, functions, problems = compare(course, assignment, common=common, min_tokens=min_tokens, students=students)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, csv_path = out_dir / f"similarity-{assignment}.html", out_dir / f"similarity-{assignment}.csv"
    write_html(assignment, pairs, functions, html_path, threshold=threshold, top=top, problems=problems)
    write_csv(pairs, csv_path)
    return pairs, html_path, csv_path, problems


def cmd_similarity(args):
    from .commands import _assignments, _course
    course = _course(args)
    [assignment] = _assignments(course, [args.assignment])
    out = Path(args.out).resolve() if args.out else course / "reports"
    pairs, html_path, csv_path, problems = report(course, assignment, out, threshold=args.threshold, top=args.top,
                                                  common=args.common, min_tokens=args.min_tokens)
    print(f"{assignment}: {LEAD}")
    for line in problems:
        print(f"  {line}")
    flagged = [p for p in pairs if p.score >= args.threshold]
    for rank, pair in enumerate(pairs[:max(len(flagged), 5)], 1):
        functions = ", ".join(sorted(pair.functions, key=lambda f: -pair.functions[f][0])[:4]) or "-"
        print(f"  {rank}. {pair.a} & {pair.b}: {100 * pair.score:.0f}% shared"
              f"{' (above the threshold)' if pair.score >= args.threshold else ''}; in {functions}")
    print(f"{len(pairs)} pairs compared, {len(flagged)} at or above {100 * args.threshold:.0f}%: {html_path} and {csv_path.name}")
    return 0

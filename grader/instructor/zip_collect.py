"""Collect an LMS download (a zip of notebooks) into ``submitted/`` without inventing students.

Names seen in real downloads:

* ``<student>_<notebook>.ipynb`` (nbgrader's own convention);
* Canvas: ``<lastfirst>[_late]_<user id>_<submission id>_<notebook>[-N].ipynb``, ``-N`` marking a
  re-upload;
* Moodle: ``<First Last>_<id>_assignsubmission_file_/<notebook>.ipynb`` (a folder per student)
  or the same joined into one file name.

Which notebook: the file name ends with one of the assignment's notebook names, whole or after
an ``_``, a ``-N`` suffix allowed. Which student: the known students are nbgrader's gradebook
students, or the roster CSV's alone when one is given (``id`` column, optional ``first_name``,
``last_name``; nbgrader's ``db student import`` format). Every run of ``_``-separated parts
before the notebook name (and of each folder name inside the zip) is a candidate; it names a
student when it is the student's id, or their name as LMSs write it ("doejane", "Jane Doe":
case, spaces and punctuation ignored), or their LMS id (the roster's ``lms_id``: Canvas's user
id in its file names). One student named: theirs. Several: skipped as
ambiguous. None: without a roster, the plain ``<student>_<notebook>.ipynb`` at the top of the
zip is a new student, as nbgrader would read it; anything else is skipped, never guessed. Two
files for one student's notebook: the highest ``-N`` is the latest and is taken.

The decisions are written to ``downloaded/<assignment>/placements.json`` and nbgrader's own
``zip_collect`` places the files, through :class:`PlacementCollectorPlugin`. Nothing is lost:
the zip is kept and every extracted file stays in ``downloaded/<assignment>/archive``.
"""
import dataclasses
import json
import re
import zipfile
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Unicode

PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*")
OS_METADATA = re.compile(r"(^|/)(__MACOSX/|\._|\.DS_Store$|Thumbs\.db$)")


@dataclasses.dataclass
class Student:
    id: str
    names: frozenset = frozenset()   # normalised "lastfirst" and "firstlast"
    lms_id: str = ""                 # Canvas's user id in its file names (the roster's lms_id)


def _normalise(text):
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def _student(student_id, first="", last="", lms_id=""):
    first, last = _normalise(first or ""), _normalise(last or "")
    return Student(student_id, frozenset({last + first, first + last}) if first and last else frozenset(),
                   (lms_id or "").strip())


def read_roster(path):
    """``[Student]`` of a roster CSV (``grader.instructor.lms.read_roster``: an ``id`` or ``student_id`` column)."""
    from .lms import read_roster as read_entries
    entries, _ = read_entries(path)
    return [_student(e.id, e.first_name, e.last_name, e.lms_id) for e in entries]


def gradebook_students(course):
    from ..course import gradebook
    with gradebook(Path(course)) as gb:
        return [_student(s.id, s.first_name, s.last_name, s.lms_user_id) for s in gb.students]


def _runs(text):
    parts = [part for part in text.split("_") if part]
    return {"_".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)}


def _inside(part, run):
    return part != run and f"_{part}_" in f"_{run}_"


def _notebook_of(basename, expected):
    """``(notebook name, prefix, resubmission number)``, or None when the file is none of ``expected``."""
    for notebook in sorted(expected, key=len, reverse=True):
        stem = re.escape(notebook[:-len(".ipynb")])
        match = re.fullmatch(rf"(?:(?P<prefix>.*)_)?{stem}(?:-(?P<copy>\d+))?\.ipynb", basename)
        if match:
            return notebook, match["prefix"] or "", int(match["copy"] or 0)
    return None


def identify(name, expected, students, roster_given):
    """``(student id, notebook, copy number)`` for a zip entry, or ``(None, reason, None)``."""
    folders, basename = name.split("/")[:-1], name.split("/")[-1]
    found = _notebook_of(basename, expected)
    if found is None:
        return None, f"not a notebook of this assignment ({', '.join(sorted(expected))})", None
    notebook, prefix, copy = found
    candidates = set(_runs(prefix))
    for folder in folders:
        candidates |= _runs(folder)
    matched = {}
    lms_ids = {student.id: student.lms_id for student in students if student.lms_id}
    for student in students:
        for candidate in candidates:
            if (candidate == student.id or (student.lms_id and candidate == student.lms_id)
                    or (_normalise(candidate) and _normalise(candidate) in student.names)):
                matched.setdefault(student.id, set()).add(candidate)
    # An id or LMS id in the name outweighs a name two students share ("doejane_4177_..." with two Jane Does).
    strong = {sid for sid, found in matched.items()
              if any(c == sid or c == lms_ids.get(sid) for c in found)}
    if strong:
        matched = {sid: found for sid, found in matched.items() if sid in strong}
    # "mary_ann_nb.ipynb" names mary_ann, not also mary: a match inside another student's longer match yields.
    def yields(sid):
        longer = {c for oid, found in matched.items() if oid != sid for c in found}
        return all(any(_inside(c, other) for other in longer) for c in matched[sid])
    named = sorted(sid for sid in matched if not yields(sid))
    if len(named) == 1:
        return named[0], notebook, copy
    if named:
        return None, f"could be any of {', '.join(named)}", None
    if not roster_given and not folders and PLAIN_ID.fullmatch(prefix) and not copy:
        return prefix, notebook, copy
    known = "in the roster" if roster_given else "in the gradebook"
    return None, (f"names no student {known}; add the student (nbgrader db student add ID) "
                  f"or pass --roster FILE.csv" if prefix or folders else "carries no student name"), None


class PlacementCollectorPlugin(FileNameCollectorPlugin):
    """nbgrader's collector for ``zip_collect``: places exactly the files :func:`collect_zip` decided on."""

    placements = Unicode("", help="JSON file of {path relative to the extracted folder: [student id, notebook]}").tag(config=True)

    def collect(self, submitted_file):
        with open(self.placements, encoding="utf-8") as handle:
            placements = json.load(handle)
        extracted = Path(self.parent._format_collect_path(self.parent.extracted_directory))
        target = placements.get(Path(submitted_file).relative_to(extracted).as_posix())
        if target is None:
            return None
        return {"student_id": target[0], "file_id": target[1]}


def collect_zip(course, assignment, archive, roster=None):
    """Report lines (``✗`` for a file skipped, ``!`` for a note, ``✓`` per student collected)."""
    course = Path(course)
    report = []
    if not archive.exists():
        return [f"✗ {archive}: no such file"]
    expected = {p.name for p in (course / "source" / assignment).glob("*.ipynb")}
    try:
        students = read_roster(roster) if roster else gradebook_students(course)
    except (OSError, ValueError) as error:
        return [f"✗ roster: {error}"]
    downloaded = course / "downloaded" / assignment
    target = downloaded / "archive"
    target.mkdir(parents=True, exist_ok=True)
    kept = f"kept in downloaded/{assignment}/archive"
    names, ignored = [], []
    try:
        with zipfile.ZipFile(archive) as bundle:
            for name in (n for n in bundle.namelist() if not n.endswith("/")):
                resolved = (target / name).resolve()
                if target.resolve() not in resolved.parents:
                    report.append(f"✗ {name!r}: path escapes the archive folder; skipped")
                    continue
                resolved.parent.mkdir(parents=True, exist_ok=True)
                resolved.write_bytes(bundle.read(name))
                (ignored if OS_METADATA.search(name) else names).append(name)
    except zipfile.BadZipFile as error:
        return [f"✗ {archive}: not a zip file ({error})"]
    if ignored:
        report.append(f"! ignored {len(ignored)} file(s) of the zipping computer's own (__MACOSX/, .DS_Store, ...)")

    chosen = {}   # (student, notebook) -> (copy number, zip entry)
    for name in sorted(names):
        student, notebook, copy = identify(name, expected, students, roster is not None)
        if student is None:
            report.append(f"✗ {name!r}: {notebook}; skipped, {kept}")
            continue
        previous = chosen.get((student, notebook))
        if previous is not None:
            older, newer = sorted([previous, (copy, name)])
            report.append(f"✗ {older[1]!r}: an earlier copy of {student}'s {notebook} than {newer[1]!r}; skipped, {kept}")
            chosen[(student, notebook)] = newer
        else:
            chosen[(student, notebook)] = (copy, name)

    placements = {name: [student, notebook] for (student, notebook), (_, name) in chosen.items()}
    placements_file = downloaded / "placements.json"
    placements_file.write_text(json.dumps(placements, indent=1, sort_keys=True))
    collected = {}
    for student, notebook in chosen:
        collected.setdefault(student, set()).add(notebook)
    if collected:
        from ..course import run_nbgrader
        result = run_nbgrader(course, "zip_collect", assignment, "--force",
                              "--collector=grader.instructor.zip_collect.PlacementCollectorPlugin",
                              f"--PlacementCollectorPlugin.placements={placements_file}")
        if result.returncode != 0:
            report.append(f"✗ nbgrader zip_collect failed: {result.stderr[-500:]}")
            return report
    for student, notebooks in sorted(collected.items()):
        for missing in sorted(expected - notebooks):
            report.append(f"! {student}: {missing} missing from the zip")
        report.append(f"✓ {student}: {', '.join(sorted(notebooks))} -> submitted/{student}/{assignment}/")
    return report

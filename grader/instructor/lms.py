"""The course roster, and grade files that Canvas and Moodle import.

The roster (``backprop-lab roster import FILE.csv``) maps nbgrader student ids to the LMS's:

=================  =====================================================================
column             meaning
=================  =====================================================================
``id``             the nbgrader student id (required; a plain name, as formgrader needs)
``first_name``     optional, written into nbgrader's gradebook
``last_name``      optional, written into nbgrader's gradebook
``email``          optional, written into nbgrader's gradebook
``lms_id``         the LMS's id of the student: Canvas's numeric user ``ID``, Moodle's ``ID number``
                   (stored as nbgrader's ``lms_user_id``)
``sis_user_id``    optional, Canvas's ``SIS User ID``
``sis_login_id``   optional, Canvas's ``SIS Login ID``
``section``        optional, Canvas's ``Section``
=================  =====================================================================

Import fills nbgrader's student table (as ``nbgrader db student import`` would, plus the LMS id)
and keeps the roster as ``roster.csv`` in the course folder for the export.

``backprop-lab export --format canvas|moodle|csv`` writes:

* **canvas**: the layout of Canvas's own gradebook export, which its gradebook import reads
  back: columns ``Student`` ("Last, First"), ``ID``, ``SIS User ID``, ``SIS Login ID``,
  ``Section``, then one column per assignment; the second row is ``Points Possible`` (Canvas
  uses it to create an assignment column it does not have yet). UTF-8.
* **moodle**: for Moodle's "Import grades from CSV": ``ID number``, ``Email address``,
  ``First name``, ``Last name``, then one column per assignment named ``ASSIGNMENT (out of N)``;
  at import the instructor maps ``ID number`` to the user field "idnumber" and each column to a
  grade item. UTF-8, comma-separated.
* **csv** (the default): the wide CSV of nbgrader's exporter (``grader.instructor.export``).

A score is nbgrader's after its late penalty; an assignment never handed in is left empty (the
LMS then keeps what it has), or 0 with ``--missing-as-zero``. Students in the gradebook but not
on the roster, and roster students the gradebook does not know, are listed, never dropped in
silence; the command exits 1 when a graded student could not be mapped.
"""
import csv
import dataclasses
from pathlib import Path

from nbgrader.api import MissingEntry

from ..course import gradebook
from ..intake import student_id_problem
from .export import csv_safe, final_score

COLUMNS = ("id", "first_name", "last_name", "email", "lms_id", "sis_user_id", "sis_login_id", "section")
ROSTER_FILE = "roster.csv"


@dataclasses.dataclass
class Entry:
    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""


def read_roster(path):
    """``([Entry], [problem line])``: a roster CSV, each bad row reported with its line number."""
    entries, problems, seen = [], [], {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        reader.fieldnames = fields
        column = next((name for name in ("id", "student_id") if name in fields), None)
        if column is None:
            raise ValueError(f"{path}: the roster needs an 'id' column (found: {', '.join(fields) or 'no header'})")
        for line, row in enumerate(reader, 2):
            values = {key: (row.get("student_id" if key == "id" else key) or "").strip() for key in COLUMNS}
            values["id"] = (row.get(column) or "").strip()
            if not values["id"]:
                problems.append(f"{path}:{line}: no student id; row skipped")
                continue
            problem = student_id_problem(values["id"])
            if problem:
                problems.append(f"{path}:{line}: {problem}")
                continue
            if values["id"] in seen:
                problems.append(f"{path}:{line}: {values['id']} again (first on line {seen[values['id']]}); row skipped")
                continue
            seen[values["id"]] = line
            entries.append(Entry(**values))
    lms = {}
    for entry in entries:
        if entry.lms_id and entry.lms_id in lms:
            problems.append(f"{path}: {entry.id} and {lms[entry.lms_id]} share the LMS id {entry.lms_id}")
        lms.setdefault(entry.lms_id, entry.id)
    return entries, problems


def import_roster(course, path):
    """Write the roster's students into nbgrader's gradebook and keep it in the course; returns report lines."""
    entries, problems = read_roster(path)
    with gradebook(Path(course)) as gb:
        for entry in entries:
            gb.update_or_create_student(entry.id, first_name=entry.first_name or None, last_name=entry.last_name or None,
                                        email=entry.email or None, lms_user_id=entry.lms_id or None)
    write_roster(Path(course) / ROSTER_FILE, entries)
    return [f"✗ {line}" for line in problems] + [f"✓ {len(entries)} students in the gradebook and in {ROSTER_FILE}"]


def write_roster(path, entries):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for entry in entries:
            writer.writerow([csv_safe(getattr(entry, key)) for key in COLUMNS])


def course_roster(course):
    path = Path(course) / ROSTER_FILE
    if not path.exists():
        return None
    entries, _ = read_roster(path)
    return {entry.id: entry for entry in entries}


def grade_table(course):
    """``(assignments [(name, max score)], {student id: {assignment: final score or None}}, {student id: Student row values})``."""
    with gradebook(Path(course)) as gb:
        assignments = sorted((a.name, a.max_score) for a in gb.assignments)
        scores, people = {}, {}
        for student in gb.students:
            people[student.id] = {"first_name": student.first_name or "", "last_name": student.last_name or "",
                                  "email": student.email or "", "lms_id": student.lms_user_id or ""}
            row = scores[student.id] = {}
            for name, _ in assignments:
                try:
                    row[name] = final_score(gb.find_submission(name, student.id))
                except MissingEntry:
                    row[name] = None
    return assignments, scores, people


def export(course, fmt, path, *, missing_as_zero=False):
    """Write the LMS file; returns (report lines, number of graded students left unmapped)."""
    assignments, scores, people = grade_table(course)
    roster = course_roster(course)
    lines, unmapped = [], 0
    if roster is None:
        lines.append(f"! no {ROSTER_FILE} in the course (backprop-lab roster import FILE.csv): LMS ids are the "
                     "gradebook's lms_user_id")
        roster = {sid: Entry(sid, **person) for sid, person in people.items()}
    for sid in sorted(set(scores) - set(roster)):
        graded = any(v is not None for v in scores[sid].values())
        unmapped += graded
        lines.append(f"✗ {sid}: in the gradebook{' with grades' if graded else ''} but not on the roster; not in the file")
    for sid in sorted(set(roster) - set(scores)):
        lines.append(f"! {sid}: on the roster but unknown to the gradebook (never handed in); empty cells")
    rows = []
    for sid in sorted(roster):
        entry = roster[sid]
        person = people.get(sid, {})
        lms_id = entry.lms_id or person.get("lms_id", "")
        if not lms_id:
            graded = any(v is not None for v in scores.get(sid, {}).values())
            unmapped += graded
            lines.append(f"✗ {sid}: no LMS id on the roster; not in the file")
            continue
        values = []
        for name, _ in assignments:
            value = scores.get(sid, {}).get(name)
            values.append("" if value is None and not missing_as_zero else f"{value or 0.0:g}")
        rows.append((entry, person, lms_id, values))

    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if fmt == "canvas":
            writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *(n for n, _ in assignments)])
            writer.writerow(["    Points Possible", "", "", "", "", *(f"{m:g}" for _, m in assignments)])
            for entry, person, lms_id, values in rows:
                last, first = entry.last_name or person.get("last_name", ""), entry.first_name or person.get("first_name", "")
                name = f"{last}, {first}" if last and first else (last or first or entry.id)
                writer.writerow([csv_safe(name), csv_safe(lms_id), csv_safe(entry.sis_user_id),
                                 csv_safe(entry.sis_login_id), csv_safe(entry.section), *values])
        elif fmt == "moodle":
            writer.writerow(["ID number", "Email address", "First name", "Last name",
                             *(f"{n} (out of {m:g})" for n, m in assignments)])
            for entry, person, lms_id, values in rows:
                writer.writerow([csv_safe(lms_id), csv_safe(entry.email or person.get("email", "")),
                                 csv_safe(entry.first_name or person.get("first_name", "")),
                                 csv_safe(entry.last_name or person.get("last_name", "")), *values])
    lines.append(f"✓ {len(rows)} students x {len(assignments)} assignments -> {path} ({fmt})")
    return lines, unmapped

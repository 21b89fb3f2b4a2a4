"""Collect an LMS-style zip of notebooks (``<student>_<notebook>.ipynb``) into ``submitted/``.

Files are extracted into ``downloaded/<assignment>/archive`` (nothing is lost: the zip is kept
and every extracted file stays there), then nbgrader's own ``zip_collect`` with its
``FileNameCollector`` places them. Odd names, missing notebooks and extra files are reported.
"""
import re
import zipfile
from pathlib import Path

PATTERN = r".*/(?P<student_id>[A-Za-z0-9][A-Za-z0-9.\-]*)_(?P<file_id>[^/]+\.ipynb)$"


def collect_zip(course, assignment, archive):
    course = Path(course)
    report = []
    if not archive.exists():
        return [f"✗ {archive}: no such file"]
    target = course / "downloaded" / assignment / "archive"
    target.mkdir(parents=True, exist_ok=True)
    expected = sorted(p.name for p in (course / "source" / assignment).glob("*.ipynb"))
    try:
        with zipfile.ZipFile(archive) as bundle:
            names = [n for n in bundle.namelist() if not n.endswith("/")]
            for name in names:
                resolved = (target / name).resolve()
                if target.resolve() not in resolved.parents:
                    report.append(f"✗ {name!r}: path escapes the archive folder; skipped")
                    continue
                resolved.parent.mkdir(parents=True, exist_ok=True)
                resolved.write_bytes(bundle.read(name))
    except zipfile.BadZipFile as error:
        return [f"✗ {archive}: not a zip file ({error})"]
    students = {}
    for name in names:
        match = re.match(PATTERN, "/" + name)
        if not match:
            report.append(f"✗ {name!r}: not named <student>_<notebook>.ipynb; left in downloaded/{assignment}/archive")
        elif match["file_id"] not in expected:
            students.setdefault(match["student_id"], set())
            report.append(f"! {name!r}: {match['file_id']} is not a notebook of {assignment}; left in the archive folder")
        else:
            students.setdefault(match["student_id"], set()).add(match["file_id"])
    for student, files in sorted(students.items()):
        for missing in sorted(set(expected) - files):
            report.append(f"! {student}: {missing} missing from the zip")
    from .cli import run_nbgrader
    result = run_nbgrader(course, "zip_collect", assignment, "--force", f"--FileNameCollectorPlugin.named_regexp={PATTERN}")
    if result.returncode != 0:
        report.append(f"✗ nbgrader zip_collect failed: {result.stderr[-500:]}")
    for student in sorted(students):
        if students[student]:
            report.append(f"✓ {student}: {', '.join(sorted(students[student]))} -> submitted/{student}/{assignment}/")
    return report

"""The implementations of the ``backprop-lab`` commands (the parser is in ``grader.instructor.cli``)."""
import os
import re
import sys
import time
from pathlib import Path

from ..course import (db_url, gradebook, prepare_database, register_students, resolve_course, run_nbgrader, submissions,
                      was_skipped)



def _course(args):
    course, why = resolve_course(getattr(args, "course_dir", None))
    print(f"backprop-lab: course {course} ({why})", file=sys.stderr)
    return course


def _fail(message):
    print(f"backprop-lab: {message}", file=sys.stderr)
    return 2


def _assignments(course, names):
    available = sorted(p.name for p in (course / "source").iterdir() if p.is_dir()) if (course / "source").is_dir() else []
    if not available:
        raise SystemExit(_fail(f"no assignments under {course / 'source'} (is --course-dir the nbgrader course folder?)"))
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(_fail(f"unknown assignment(s) {', '.join(unknown)}; available: {', '.join(available)}"))
    return list(names) or available


# -- release ------------------------------------------------------------------------
def verify_release(course, assignment, execute=True):
    """Problems with a generated release: leaked solution or hidden-test lines, unexpected errors."""
    from ..release_check import release_problems
    return release_problems(course, assignment, execute=execute)


def release_allowed(course, assignment, force=False):
    """Print what ``assignment``'s release gives away of other assignments; False if one of those is not yet due."""
    from ..reveals import format_due, release_gate
    not_yet_due, undated, _ = release_gate(course, assignment, lambda: gradebook(course))
    for item in undated:
        print(f"! {assignment}: gives away the solutions of {item.assignment} ({item.names()}), which has no due date "
              f"in the gradebook; hand it out only after {item.assignment} is due (or set one: "
              f"nbgrader db assignment add {item.assignment} --duedate='YYYY-MM-DD HH:MM:SS TZ')")
    if not not_yet_due:
        return True
    reveals = "; ".join(f"{item.assignment} ({item.names()}), due {format_due(item.due)}" for item in not_yet_due)
    if force:
        print(f"! {assignment}: released before its solutions are due (--force): {reveals}")
        return True
    print(f"✗ {assignment}: not released: it gives away the solutions of assignments not yet due: {reveals}. "
          f"Release it after that, or pass --force")
    return False


def cmd_release(args):
    course = _course(args)
    status = 0
    for assignment in _assignments(course, args.assignments):
        if not release_allowed(course, assignment, getattr(args, "force", False)):
            status = 1
            continue
        result = run_nbgrader(course, "generate_assignment", assignment, "--force")
        if result.returncode != 0:
            print(f"✗ {assignment}: nbgrader generate_assignment failed\n{result.stderr[-2000:]}")
            status = 1
            continue
        problems = verify_release(course, assignment, execute=not args.no_execute)
        if problems:
            status = 1
            print(f"✗ {assignment}: release generated but not clean:")
            for problem in problems:
                print(f"    {problem}")
        else:
            checked = "no solution or hidden-test line" + ("; runs with only NotImplementedError" if not args.no_execute else "")
            print(f"✓ {assignment}: release/{assignment} ({checked})")
    return status


# -- collect ------------------------------------------------------------------------
def cmd_collect(args):
    course = _course(args)
    if args.zip:
        from .zip_collect import collect_zip
        report = collect_zip(course, args.assignment, Path(args.zip), Path(args.roster) if args.roster else None)
        for line in report:
            print(line)
        skipped = sum(line.startswith("✗") for line in report)
        if skipped:
            print(f"{skipped} file(s) skipped: nothing was guessed; rename them or add the students, then collect again")
        return 1 if skipped else 0
    result = run_nbgrader(course, "collect", args.assignment, *(["--update"] if args.update else []))
    sys.stdout.write(result.stdout + result.stderr)
    unwritable = re.search(r"Unwritable directory, please contact your instructor: (\S+)", result.stdout + result.stderr)
    if result.returncode != 0 and unwritable:
        _fail(f"nbgrader's exchange {unwritable[1]} does not exist or is not writable: create it "
              f"(sudo mkdir -p /srv/nbgrader/exchange && sudo chmod 0777 /srv/nbgrader/exchange) and set "
              f"c.Exchange.root in {course / 'nbgrader_config.py'} (README: nbgrader's exchange)")
    return result.returncode


# -- autograde ----------------------------------------------------------------------
class Progress:
    """A one-line progress bar with counts and an ETA, on stderr."""

    def __init__(self, total):
        self.total, self.done, self.failed, self.skipped, self.started = total, 0, 0, 0, time.monotonic()
        # On a terminal the bar redraws in place; in a log file it would be one endless line,
        # so there it is written as a line at each tenth of the way and at the end.
        self.live = sys.stderr.isatty()

    def step(self, ok, skipped=False):
        """One submission finished: graded (``ok`` or failed), or ``skipped`` by nbgrader as already graded."""
        self.done += 1
        self.failed += 0 if ok or skipped else 1
        self.skipped += 1 if skipped else 0
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        skipped = f", {self.skipped} skipped (already graded)" if self.skipped else ""
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done - self.skipped}/{self.total} graded, "
                f"{self.failed} failed{skipped}, {elapsed:5.0f} s elapsed, ETA {eta:4.0f} s")
        if self.live:
            sys.stderr.write(f"\r{line} " + ("\n" if self.done == self.total else ""))
        elif self.done == self.total or 10 * self.done // self.total != 10 * (self.done - 1) // self.total:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def autograde(course, assignments, students=None, jobs=None, force=False, extra=()):
    """Grade every submission in parallel worker processes; returns [(assignment, student, reason, seconds, problems)].

    First the canary grades each assignment's reference work in a throw-away course: short of full
    marks, :class:`grader.canary.CanaryFailed` is raised before anyone is graded or anything is
    written to the course's gradebook.
    """
    from ..canary import CanaryFailed, run_canary
    from ..workers import grade_all
    todo = submissions(course, assignments, students)
    jobs = jobs or os.cpu_count() or 1
    extra = list(extra) + (["--force"] if force else [])
    if todo:
        canary = run_canary(course, sorted({assignment for assignment, _ in todo}), jobs, extra)
        if not canary.ok:
            raise CanaryFailed(canary)
        print(canary.message(), flush=True)
    prepare_database(course)
    register_students(course, sorted({student for _, student in todo}))
    progress = Progress(len(todo))
    results = grade_all(course, todo, jobs, extra,
                        on_done=lambda a, s, reason, *_: progress.step(not reason, not reason and was_skipped(course, a, s)))
    return sorted(results)


def score_table(course, assignments):
    """{student: {assignment: (score, max_score, late penalty)}} from nbgrader's gradebook, the score after the penalty."""
    from nbgrader.api import MissingEntry

    from .export import final_score
    table = {}
    with gradebook(course) as gb:
        for assignment in assignments:
            try:
                gb.find_assignment(assignment)
            except MissingEntry:
                continue
            for student in gb.students:
                try:
                    submission = gb.find_submission(assignment, student.id)
                except MissingEntry:
                    continue
                table.setdefault(student.id, {})[assignment] = (final_score(submission), submission.max_score,
                                                                 submission.late_submission_penalty or 0.0)
    return table


def print_scores(course, assignments, failures=()):
    table = score_table(course, assignments)
    short = [a.split("-", 1)[0] for a in assignments]
    header = f"{'student':<14}" + "".join(f"{s:>9}" for s in short) + f"{'total':>10}"
    print(header)
    print("-" * len(header))
    for student in sorted(table):
        row = table[student]
        cells = "".join(f"{row[a][0]:>5g}/{row[a][1]:<3g}" if a in row else f"{'-':>9}" for a in assignments)
        total = sum(v[0] for v in row.values())
        maximum = sum(v[1] for v in row.values())
        print(f"{student:<14}{cells}{total:>6g}/{maximum:<3g}")
    late = [(student, a, row[a][2]) for student, row in sorted(table.items()) for a in assignments if a in row and row[a][2]]
    for student, assignment, penalty in late:
        print(f"  {student}/{assignment}: late, {penalty:g} point(s) taken off by nbgrader's late penalty")
    for assignment, student, reason, _, problems in failures:
        if reason:
            print(f"✗ {student}/{assignment}: {reason} (log: logs/{assignment}/{student}.log)")
        for problem in problems:
            if problem != reason:
                print(f"! {student}/{assignment}: {problem}")
    return table


def cmd_autograde(args, extra=()):
    course = _course(args)
    assignments = _assignments(course, args.assignments)
    refused = []
    todo = submissions(course, assignments, args.student, refused)
    for assignment, name, reason in refused:
        print(f"✗ {name}/{assignment}: {reason}; not graded")
    if not todo:
        return _fail(f"no submissions under {course / 'submitted'} for {', '.join(assignments)}")
    print(f"Grading {len(todo)} submission(s) with {args.jobs or os.cpu_count()} parallel worker(s)...")
    from ..canary import GRADER_BROKEN, CanaryFailed
    try:
        results = autograde(course, assignments, args.student, args.jobs, getattr(args, "force", False), extra)
    except CanaryFailed as failure:
        print(f"backprop-lab: {failure}", file=sys.stderr)
        return GRADER_BROKEN
    print_scores(course, assignments, results)
    skipped = sum(not reason and was_skipped(course, a, s) for a, s, reason, *_ in results)
    if skipped:
        print(f"{skipped} submission(s) were already graded and skipped (their grades are above); --force grades them again")
    return 1 if refused or any(result[2] for result in results) else 0


def cmd_regrade(args):
    args.force = True
    seeds = [] if args.new_seeds else ["--JudgeInSandbox.reuse_recorded_seed=True"]
    return cmd_autograde(args, extra=seeds)


# -- feedback, export, report -------------------------------------------------------
def autograded_students(course, assignment):
    folder = course / "autograded"
    return sorted(p.name for p in folder.iterdir() if (p / assignment).is_dir()) if folder.is_dir() else []


def _last_error(result):
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "Error" in line]
    return (errors or lines or [f"nbgrader exited with {result.returncode}"])[-1][:300]


def cmd_feedback(args):
    """Feedback for every autograded submission; an assignment nobody's work was autograded for is skipped."""
    course = _course(args)
    status = 0
    for assignment in _assignments(course, args.assignments):
        students = autograded_students(course, assignment)
        if not students:
            print(f"- {assignment}: skipped, nothing autograded yet (backprop-lab autograde {assignment} first)")
            status |= 1 if args.assignments else 0  # asked for by name: say so in the exit code too
            continue
        result = run_nbgrader(course, "generate_feedback", assignment, "--force")
        if result.returncode == 0:
            print(f"✓ {assignment}: feedback for {len(students)} student(s) in feedback/<student>/{assignment}/")
        else:
            print(f"✗ {assignment}: nbgrader generate_feedback failed: {_last_error(result)}")
            status = 1
    return status


def export_csv(course, path):
    """One row per student, one column per assignment and the total, via nbgrader's exporter plugin."""
    result = run_nbgrader(course, "export", "--exporter=grader.instructor.export.WideCsvExportPlugin", f"--to={path}")
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return path


def cmd_export(args):
    course = _course(args)
    fmt = getattr(args, "format", "csv")
    path = Path(args.to).resolve() if args.to else course / ("grades.csv" if fmt == "csv" else f"grades-{fmt}.csv")
    if fmt == "csv":
        export_csv(course, path)
        print(f"grades written to {path}")
        return 0
    from .lms import export
    lines, unmapped = export(course, fmt, path, missing_as_zero=args.missing_as_zero)
    print("\n".join(lines))
    if unmapped:
        print(f"{unmapped} graded student(s) are not in {path.name}: add them to the roster and export again")
    return 1 if unmapped else 0


def cmd_extensions(args):
    from traitlets.config import Config

    from .. import late
    from ..course import course_config
    course = _course(args)
    try:
        new, problems = late.read_extensions(Path(args.file))
    except (OSError, ValueError) as error:
        return _fail(f"extensions: {error}")
    known = set(_assignments(course, []))
    for (student, assignment) in [key for key in new if key[1] not in known]:
        problems.append(f"{student}/{assignment}: no such assignment; row skipped")
        del new[(student, assignment)]
    merged = {**late.course_extensions(course), **new}
    late.write_extensions(course / late.EXTENSIONS_FILE, merged)
    config = course_config(course)
    plugin_class = config.get("AssignLatePenalties", Config()).get("plugin_class", "grader.late.PercentPerDay")
    from traitlets.utils.importstring import import_item
    plugin = (import_item(plugin_class) if isinstance(plugin_class, str) else plugin_class)(config=config)
    lines = [f"✗ {line}" for line in problems]
    lines += late.apply(course, db_url(course, config), config.CourseDirectory.get("course_id", "backprop-lab"), new, plugin)
    print("\n".join(lines + [f"{len(new)} extension(s) imported; {len(merged)} in {late.EXTENSIONS_FILE}"]))
    return 1 if problems else 0


def cmd_roster(args):
    from .lms import import_roster
    course = _course(args)
    try:
        lines = import_roster(course, Path(args.file))
    except (OSError, ValueError) as error:
        return _fail(f"roster: {error}")
    print("\n".join(lines))
    return 1 if any(line.startswith("✗") for line in lines) else 0


def cmd_report(args):
    from .report import write_report
    course = _course(args)
    out = Path(args.out).resolve() if args.out else course / "reports"
    text, png = write_report(course, db_url(course), _assignments(course, args.assignments), out)
    print(text)
    print(f"report written to {out} ({png.name})")
    return 0


def cmd_sync(args):
    from ..authoring import sync
    drift = sync(str(_course(args)), check=args.check)
    for item in drift:
        print(("drift: " if args.check else "updated: ") + item)
    return 1 if (args.check and drift) else 0


def cmd_doctor(args):
    from ..doctor import cmd_doctor
    return cmd_doctor(_course(args))

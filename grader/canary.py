"""The canary: before a batch, reference work is graded; short of full marks, nobody is graded.

For each assignment of the batch, the source notebooks (whose solution cells are the reference
work) are handed in by a student ``canary`` of a throw-away course in a temporary folder, with
the course's own ``nbgrader_config.py`` and a SQLite gradebook of its own, and graded by the
same workers, judge and sandbox as the batch, one notebook per assignment, in parallel. The
real course and its gradebook are never touched: the temporary course's root and ``db_url`` are
given on nbgrader's command line, which wins over the config file (and over
``BACKPROP_LAB_DB_URL``). Anything short of full marks means the grader is broken (no sandbox
Python, no kernel, a broken hidden check, a config that lost the judge): the batch stops with
:data:`GRADER_BROKEN` and a message naming what failed.

There is no cache of a passing canary: what it guards (the interpreter's packages, the kernel,
bubblewrap, the config, the hidden checks) can change between two runs without any file of
ours changing, and it costs a few seconds against a batch's minutes.
"""
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

GRADER_BROKEN = 4
STUDENT = "canary"


class CanaryFailed(RuntimeError):
    """Reference work did not earn full marks: the grader is broken."""

    def __init__(self, result):
        self.result = result
        super().__init__(result.message())


@dataclasses.dataclass
class CanaryResult:
    assignments: list
    seconds: float
    problems: list          # one line per assignment short of full marks
    hints: list             # doctor's failed checks that explain it
    folder: Path = None     # the canary course, kept when it failed

    @property
    def ok(self):
        return not self.problems

    def message(self):
        if self.ok:
            return (f"canary: reference work of {', '.join(self.assignments)} earned full marks "
                    f"({self.seconds:.1f} s)")
        lines = ["the grader is broken, so nobody was graded: the canary (the source notebooks' reference work, "
                 "graded in the sandbox) fell short:"]
        lines += [f"  ✗ {problem}" for problem in self.problems]
        for hint in self.hints:
            lines += [f"  {line}" for line in hint.lines()]
        if self.folder is not None:
            lines.append(f"  canary course and its logs kept in {self.folder} (logs/<assignment>/{STUDENT}.log)")
        lines.append("  run `backprop-lab doctor` for every check, fix the grader, then grade again")
        return "\n".join(lines)


def _temporary_course(course, assignments):
    folder = Path(tempfile.mkdtemp(prefix="backprop-lab-canary-")) / "course"
    (folder / "source").mkdir(parents=True)
    if (course / "nbgrader_config.py").is_file():
        shutil.copy(course / "nbgrader_config.py", folder / "nbgrader_config.py")
    for assignment in assignments:
        shutil.copytree(course / "source" / assignment, folder / "source" / assignment,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        handed_in = folder / "submitted" / STUDENT / assignment
        handed_in.mkdir(parents=True)
        for notebook in sorted((course / "source" / assignment).glob("*.ipynb")):
            shutil.copy(notebook, handed_in / notebook.name)
    return folder


def _shortfalls(folder, assignments, results):
    """One line per assignment whose reference work did not earn full marks."""
    from nbgrader.api import Gradebook, MissingEntry

    from . import records
    reasons = {assignment: reason for assignment, _, reason, *_ in results}
    db_url = f"sqlite:///{folder / 'gradebook.db'}"
    problems = []
    with Gradebook(db_url) as gb:
        for assignment in assignments:
            if reasons.get(assignment):
                problems.append(f"{assignment}: {_readable(reasons[assignment])}")
                continue
            try:
                submission = gb.find_submission(assignment, STUDENT)
            except MissingEntry:
                problems.append(f"{assignment}: no grade was recorded (log: {folder}/logs/{assignment}/{STUDENT}.log)")
                continue
            if submission.max_score and submission.score >= submission.max_score:
                continue
            lost = [f"{grade.name} {grade.score:g}/{grade.max_score:g}" for notebook in submission.notebooks
                    for grade in notebook.grades if grade.score < grade.max_score]
            checks = [check["message"] for row in records.latest(db_url, assignment, STUDENT) for check in row["checks"]
                      if check["earned"] < check["points"]]
            why = f"; first failed check: {checks[0][:300]}" if checks else ""
            problems.append(f"{assignment}: reference work scored {submission.score:g}/{submission.max_score:g} "
                            f"(lost {', '.join(lost[:6]) or 'everything'}){why}")
    return problems


def _readable(reason):
    """A worker's failure line without the exception's module path."""
    for name in ("grader.sandbox.launch.InfrastructureError: ", "InfrastructureError: "):
        if reason.startswith(name):
            return reason[len(name):]
    return reason


def _hints(course):
    """The doctor's failed checks of the sandbox, which usually name the cause."""
    from . import doctor
    try:
        python = doctor.sandbox_python(course)
        checks = [doctor.check_bubblewrap(), doctor.check_python(python)]
    except Exception:  # hints only: the canary's own message stands without them
        return []
    return [check for check in checks if not check.ok]


def _empty_gradebook(db_url):
    """nbgrader's empty gradebook, made the way nbgrader makes one, less its 2.7 s ``alembic heads`` command.

    nbgrader runs that command in a new process only to read the schema version of the
    installed nbgrader, which alembic gives in-process at once. Should it fail, nbgrader
    creates the gradebook itself.
    """
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from nbgrader import api
    from sqlalchemy import create_engine, text
    with api._temp_alembic_ini(db_url) as ini:
        head = ScriptDirectory.from_config(Config(ini)).get_current_head()
    engine = create_engine(db_url)
    try:
        api.Base.metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": head})
    finally:
        engine.dispose()


def _generate_in_worker(folder, argv, log_path):
    os.chdir(folder)
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    from nbgrader.apps.generateassignmentapp import GenerateAssignmentApp
    GenerateAssignmentApp.launch_instance(argv=argv)


def _generate(folder, overrides, log_path):
    """``nbgrader generate_assignment`` of every assignment in the temporary course (only the batch's are there).

    Run in a process from the grading workers' fork server, which has nbgrader imported already
    and which the batch needs next anyway: a new ``nbgrader`` process would spend longer
    importing than generating.
    """
    from . import workers
    log_path.parent.mkdir(parents=True, exist_ok=True)
    process = workers._context().Process(target=_generate_in_worker, name="canary generate_assignment",
                                         args=(str(folder), ["*", *overrides], str(log_path)))
    process.start()
    process.join(600)
    if process.is_alive():
        process.kill()
        process.join()
    return process.exitcode == 0


def _register_student(folder):
    """The canary student, created before its workers start (two of them would race to insert it)."""
    from nbgrader.api import Gradebook

    from .course import course_config
    course_id = course_config(folder).get("CourseDirectory", {}).get("course_id", "default_course")
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}", course_id) as gb:
        gb.update_or_create_student(STUDENT)


def run_canary(course, assignments, jobs=None, extra=()):
    """Grade the reference work of ``assignments`` in a temporary course; returns a :class:`CanaryResult`."""
    from . import workers
    course = Path(course)
    started = time.monotonic()
    folder = _temporary_course(course, assignments)
    overrides = [f"--CourseDirectory.root={folder}", f"--CourseDirectory.db_url=sqlite:///{folder / 'gradebook.db'}",
                 "--Autograde.create_student=True"]
    try:
        _empty_gradebook(f"sqlite:///{folder / 'gradebook.db'}")
    except Exception:  # nbgrader's own way, then
        (folder / "gradebook.db").unlink(missing_ok=True)
    generation_log = folder / "logs" / "generate_assignment.log"
    if not _generate(folder, overrides, generation_log):
        log = generation_log.read_text(errors="replace").strip() if generation_log.exists() else ""
        problems = [f"nbgrader generate_assignment failed on the source notebooks: {log[-800:]}"]
    else:
        _register_student(folder)
        todo = [(assignment, STUDENT) for assignment in assignments]
        results = workers.grade_all(folder, todo, min(jobs or os.cpu_count() or 1, len(todo)), [*overrides, *extra])
        problems = _shortfalls(folder, assignments, results)
    result = CanaryResult(list(assignments), time.monotonic() - started, problems, _hints(course) if problems else [])
    if problems:
        result.folder = folder
    else:
        shutil.rmtree(folder.parent, ignore_errors=True)
    return result

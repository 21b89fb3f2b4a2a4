"""Parallel autograding: one process per submission, forked from a server that loaded nbgrader once.

Each submission is graded by nbgrader's own ``autograde`` application (the course's
``nbgrader_config.py``, hence the hardened judge), run in-process in a fresh worker process.
The workers come from multiprocessing's fork server, which imports nbgrader, the judge and its
hidden checks once; a new worker is ready in milliseconds instead of the seconds a new
``nbgrader`` process spends importing. A worker grades exactly one submission and exits, so
nothing (traitlets singletons, database sessions, a crash) carries over to the next one, and a
worker that dies or is killed loses only its own submission.

Each worker writes nbgrader's log live to ``logs/<assignment>/<student>.log`` in the course
folder; its first line names the worker's process id.
"""
import multiprocessing
import multiprocessing.connection
import os
import re
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

from .intake import PROBLEM_MARK

PRELOAD = "grader._worker_preload"
NOTHING_TO_GRADE = 3


def _context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([PRELOAD])
        return context
    return multiprocessing.get_context("spawn")  # no fork server (Windows): each worker imports nbgrader itself


def _grade_in_worker(course, assignment, student, extra, log_path):
    """Body of one worker process: nbgrader autograde for one submission, its log to ``log_path``."""
    from .nbgrader_main import skip_unused_grammar
    skip_unused_grammar()
    os.chdir(course)
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    argv = [assignment, "--student", student, *extra]
    print(f"[backprop-lab] worker {os.getpid()}: nbgrader autograde {' '.join(argv)}", flush=True)
    # Before nbgrader touches the folder (it reads timestamp.txt even before its own hook runs):
    # links and special files go to the quarantine. Not a courtesy: a failure stops the worker.
    from .quarantine import set_aside
    problems = set_aside(Path(course) / "submitted" / student / assignment, course)
    try:
        problems += _inspect(Path(course), assignment, student)
    except Exception as error:  # the inspection is a courtesy; nbgrader still grades
        print(f"[backprop-lab] could not inspect the submission ({type(error).__name__}: {error})", flush=True)
    for problem in problems:
        print(f"{PROBLEM_MARK} {problem.line()}", flush=True)
    if any(not problem.graded and not problem.notebook for problem in problems):
        sys.exit(NOTHING_TO_GRADE)
    # nbgrader 0.9 builds a submission's rows before adding them to the session; SQLAlchemy 2
    # warns for each one, yet adds them all with the submission. Benign and repeated per notebook.
    warnings.filterwarnings("ignore", message=r"Object of type <\w+> not in session")
    from .autograde import HardenedAutogradeApp
    started = time.monotonic()
    try:
        HardenedAutogradeApp.launch_instance(argv=argv)
    finally:
        sys.stderr.flush()
        print(f"[backprop-lab] worker {os.getpid()}: finished in {time.monotonic() - started:.1f} s", flush=True)


def _inspect(course, assignment, student):
    import nbformat
    from .intake import grade_ids, inspect_submission
    expected = {}
    for path in sorted((course / "source" / assignment).glob("*.ipynb")):
        try:
            expected[path.stem] = grade_ids(nbformat.read(path, as_version=4))
        except Exception:  # an unreadable source notebook: compare names only (nbgrader will say more)
            expected[path.stem] = set()
    return inspect_submission(course / "submitted" / student / assignment, expected)


def problems_in(log_path):
    """The one-line problems a worker found in its submission (see ``grader.intake``)."""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        if PROBLEM_MARK in line:
            text = line.split(PROBLEM_MARK, 1)[1].strip()
            if text not in found:
                found.append(text)
    return found


def _failure_reason(exitcode, log_path):
    if exitcode == 0:
        return ""
    if exitcode == NOTHING_TO_GRADE:
        problems = problems_in(log_path)
        return problems[0] if problems else "nothing to grade"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the worker was killed by {name} before it finished"
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    # The last exception a traceback ended with says most; nbgrader's own closing ERROR lines
    # ("Please see the above traceback ...") say nothing, so they come last in preference.
    exceptions = [line.strip() for line in lines if _EXCEPTION_LINE.match(line)]
    errors = [line.strip() for line in lines
              if ("ERROR" in line or "Error" in line) and not any(g in line for g in _GENERIC_ERRORS)]
    found = exceptions or errors
    return (found[-1] if found else f"nbgrader exited with {exitcode}")[:300]


_EXCEPTION_LINE = re.compile(r"^\s*(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Entry|Exit|Timeout)(?::\s|$)")
_GENERIC_ERRORS = ("Please see the", "There was an error processing assignment", "Traceback (most recent call last)")


def submission_time_limit(course, assignment):
    """Seconds one worker may take for a submission: the judge's per-notebook limit for each notebook, plus slack.

    Enforced here, outside the sandbox and outside the judge, so that even a judge or an
    nbgrader step that hangs costs only its own submission.
    """
    from traitlets.config import PyFileConfigLoader
    timeout = 900.0
    try:
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
        timeout = float(config.get("JudgeInSandbox", {}).get("notebook_timeout", timeout))
    except Exception:  # no readable config: nbgrader itself will say so in the worker
        pass
    notebooks = max(1, len(list((Path(course) / "source" / assignment).glob("*.ipynb"))))
    return notebooks * (timeout + 60) + 120


def grade_all(course, todo, jobs, extra=(), on_done=None):
    """Grade ``todo`` ([(assignment, student)]) with up to ``jobs`` workers at once.

    Calls ``on_done(assignment, student, reason, seconds, problems)`` as each finishes (reason is
    "" on success; problems are the submission's one-line problems) and returns the same tuples.
    A worker past :func:`submission_time_limit` is killed. A failed, killed or interrupted
    submission's half-written autograded copy is removed, so that the next run grades it again.
    """
    course = Path(course)
    context = _context()
    pending = list(todo)
    running = {}
    results = []
    limits = {assignment: submission_time_limit(course, assignment) for assignment in {a for a, _ in todo}}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                assignment, student = pending.pop(0)
                log_path = course / "logs" / assignment / f"{student}.log"
                log_path.parent.mkdir(parents=True, exist_ok=True)
                worker = context.Process(target=_grade_in_worker, name=f"autograde {assignment}/{student}",
                                         args=(str(course), assignment, student, list(extra), str(log_path)))
                worker.start()
                running[worker.sentinel] = (worker, assignment, student, time.monotonic(), log_path)
            now = time.monotonic()
            deadline = min(started + limits[assignment] for _, assignment, _, started, _ in running.values())
            ready = multiprocessing.connection.wait(list(running), timeout=max(0.0, deadline - now) + 0.1)
            overdue = {} if ready else {sentinel: limits[item[1]] for sentinel, item in running.items()
                                        if time.monotonic() > item[3] + limits[item[1]]}
            for sentinel in overdue:
                os.kill(running[sentinel][0].pid, signal.SIGKILL)
            for sentinel in list(ready) + list(overdue):
                worker, assignment, student, started, log_path = running.pop(sentinel)
                worker.join()
                reason = _failure_reason(worker.exitcode, log_path)
                if sentinel in overdue:
                    reason = f"grading took longer than its {overdue[sentinel]:.0f} s limit; the worker was stopped"
                if reason:
                    shutil.rmtree(course / "autograded" / student / assignment, ignore_errors=True)
                outcome = (assignment, student, reason, time.monotonic() - started, problems_in(log_path))
                results.append(outcome)
                if on_done is not None:
                    on_done(*outcome)
    finally:
        for worker, assignment, student, *_ in running.values():  # interrupted: stop what is still running
            worker.terminate()
            worker.join(5)
            if worker.is_alive():
                worker.kill()
                worker.join()
            shutil.rmtree(course / "autograded" / student / assignment, ignore_errors=True)
    return results

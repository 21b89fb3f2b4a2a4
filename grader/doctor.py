"""``backprop-lab doctor``: is this machine ready to grade? One line per check, and the fix for each failure.

Checks what grading needs, in the order it needs it: the course folder and its nbgrader
config, bubblewrap, the Python the sandbox runs (and that it imports what the runner and the
kernel import, in isolated mode as in the sandbox), a kernel started in the sandbox through the
judge itself, the gradebook (``db_url`` of the course config, password hidden), and nbgrader's
exchange. Nothing is created or changed.
"""
import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

# What the runner (grader/sandbox/runner.py) and a graded notebook's kernel import.
RUNNER_MODULES = ("nbformat", "nbclient", "jupyter_client", "jupyter_core", "zmq", "traitlets", "ipykernel",
                  "numpy", "matplotlib", "matplotlib_inline")
DEFAULT_EXCHANGE = "/usr/local/share/nbgrader/exchange"
HARDENED_JUDGE = "grader.nbgrader_plugins.JudgeInSandbox"
GUARD_HOOK = "grader.guard.before_autograde"


@dataclasses.dataclass
class Check:
    name: str
    ok: bool
    summary: str
    fix: str = ""

    def lines(self):
        yield f"{'✓' if self.ok else '✗'} {self.name:<16}{self.summary}"
        if not self.ok and self.fix:
            for number, line in enumerate(self.fix.splitlines()):
                yield f"    {'fix: ' if number == 0 else '     '}{line}"


def _config(course):
    from .course import course_config
    return course_config(course)


def sandbox_python(course, config=None):
    """The interpreter the sandbox will run: ``JudgeInSandbox.sandbox_python`` of the course config, else this one."""
    config = config if config is not None else _config(course)
    return config.get("JudgeInSandbox", {}).get("sandbox_python") or sys.executable


def check_course(course):
    if not course.is_dir():
        return Check("course folder", False, f"{course} does not exist",
                     "pass --course-dir DIR (or set BACKPROP_LAB_COURSE) for your nbgrader course folder")
    if not (course / "nbgrader_config.py").is_file():
        return Check("course folder", False, f"{course} has no nbgrader_config.py",
                     f"copy the repository's course/nbgrader_config.py into {course}")
    try:
        _config(course)
    except Exception as error:
        return Check("course folder", False, f"{course / 'nbgrader_config.py'} does not load: {type(error).__name__}: {error}",
                     "fix the error in nbgrader_config.py")
    sources = sorted(p.name for p in (course / "source").iterdir() if p.is_dir()) if (course / "source").is_dir() else []
    if not sources:
        return Check("course folder", False, f"{course} has no assignment under source/",
                     "put each assignment's source notebooks in source/<assignment>/")
    if not os.access(course, os.W_OK | os.X_OK):
        return Check("course folder", False, f"{course} is not writable by this user (grading writes autograded/, logs/)",
                     f"run as the course's owner, or: chown -R {_user()} {course}")
    return Check("course folder", True, f"{course}: nbgrader_config.py, {len(sources)} assignment(s) in source/, writable")


def check_config(course):
    try:
        config = _config(course)
    except Exception as error:
        return Check("nbgrader config", False, f"cannot be read ({error})", "fix nbgrader_config.py")
    autograde = config.get("Autograde", {})
    steps = [str(getattr(step, "__module__", "") + "." + getattr(step, "__name__", "")) if isinstance(step, type) else str(step)
             for step in autograde.get("autograde_preprocessors", [])]
    reference = "copy the autograde section of the repository's course/nbgrader_config.py"
    if HARDENED_JUDGE not in steps:
        return Check("nbgrader config", False, "autograde does not run the judge: stock nbgrader would run hidden tests in the "
                     "student's kernel", f"{reference} (Autograde.autograde_preprocessors with {HARDENED_JUDGE})")
    if str(autograde.get("pre_convert_hook", "")) != GUARD_HOOK:
        return Check("nbgrader config", False, "Autograde.pre_convert_hook is not the guard: a grader failure would leave "
                     "empty (0) grades in the gradebook", f"c.Autograde.pre_convert_hook = \"{GUARD_HOOK}\"")
    return Check("nbgrader config", True, f"autograde runs {HARDENED_JUDGE}; a grader failure stores nothing")


def _bwrap_probe(path):
    return subprocess.run([path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--die-with-parent",
                           "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "true"],
                          capture_output=True, text=True, timeout=30)


def check_bubblewrap():
    path = shutil.which("bwrap")
    if path is None:
        return Check("bubblewrap", False, "bwrap is not installed: student code would run with limits only, able to read "
                     "everything this user can (the gradebook, source/, other students)",
                     "apt-get install bubblewrap   (Debian/Ubuntu; dnf install bubblewrap on Fedora)")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        probe = _bwrap_probe(path)
    except (OSError, subprocess.SubprocessError) as error:
        return Check("bubblewrap", False, f"{path} cannot be run: {error}", "reinstall the bubblewrap package")
    if probe.returncode != 0:
        return Check("bubblewrap", False, f"{path} cannot build a sandbox as {_user()}: {probe.stderr.strip()[-300:]}",
                     "allow unprivileged user namespaces: sysctl -w kernel.unprivileged_userns_clone=1 (Debian),\n"
                     "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap (Ubuntu 24.04+),\n"
                     "or, in a container, allow namespaces (e.g. docker run --security-opt seccomp=unconfined)")
    if os.geteuid() == 0 and not os.access("/usr/bin/setpriv", os.X_OK):
        return Check("bubblewrap", False, "running as root, the sandbox drops to a spare uid with /usr/bin/setpriv, "
                     "which is missing", "apt-get install util-linux")
    return Check("bubblewrap", True, f"{path} ({version or 'bubblewrap'}) builds a sandbox as {_user()}")


_IMPORT_PROBE = """
import importlib, json, sys
sys.modules.setdefault("rfc3987_syntax", None)
missing = {}
for name in %r:
    try:
        importlib.import_module(name)
    except BaseException as error:
        missing[name] = f"{type(error).__name__}: {error}"
print(json.dumps({"version": sys.version.split()[0], "prefix": sys.prefix, "missing": missing}))
"""


def check_python(python):
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return Check("sandbox Python", False, f"{python} is not an executable file",
                     "set c.JudgeInSandbox.sandbox_python in nbgrader_config.py to a Python with the grader's packages, "
                     "or remove it to use this one")
    cannot_run = "set c.JudgeInSandbox.sandbox_python to a working Python 3.10+ with the grader's packages"
    try:
        found = subprocess.run([python, "-I", "-c", _IMPORT_PROBE % (RUNNER_MODULES,)], capture_output=True, text=True,
                               timeout=120)
    except (OSError, subprocess.SubprocessError) as error:
        return Check("sandbox Python", False, f"{python} cannot be run: {error}", cannot_run)
    try:
        report = json.loads(found.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Check("sandbox Python", False, f"{python} cannot be run: {found.stderr.strip()[-300:]}", cannot_run)
    missing = report["missing"]
    if missing:
        names = ", ".join(missing)
        first = next(iter(missing.values()))
        return Check("sandbox Python", False, f"{python} (Python {report['version']}) cannot import {names} ({first})",
                     f"{python} -m pip install {' '.join(sorted(_pip_name(n) for n in missing))}\n"
                     "(or point c.JudgeInSandbox.sandbox_python at the Python you installed backprop-lab into)")
    return Check("sandbox Python", True, f"{python} (Python {report['version']}, {report['prefix']}) imports "
                 f"{', '.join(RUNNER_MODULES)}")


def _pip_name(module):
    return {"zmq": "pyzmq", "jupyter_client": "jupyter-client", "jupyter_core": "jupyter-core",
            "matplotlib_inline": "matplotlib-inline"}.get(module, module)


def check_kernel(python):
    """A one-cell notebook through the judge: the sandbox is built, the runner starts, the kernel runs the cell."""
    import nbformat

    from . import judge
    from .sandbox import launch
    submission = tempfile.mkdtemp(prefix="backprop-lab-doctor-")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    started = time.monotonic()
    try:
        verdict = judge.judge_notebook(nb, submission, seed=0, limits=launch.Limits(notebook_timeout=120), python=python)
    except launch.InfrastructureError as error:
        return Check("sandbox kernel", False, f"no kernel in the sandbox: {error}",
                     "fix the sandbox Python above first; otherwise see the runner's last lines in this message")
    finally:
        shutil.rmtree(submission, ignore_errors=True)
    printed = "".join(output.get("text", "") for output in nb.cells[0].get("outputs", []))
    if "42" not in printed or verdict.notes:
        return Check("sandbox kernel", False, f"the kernel started but did not run a cell ({'; '.join(verdict.notes) or printed!r})",
                     "run `backprop-lab doctor` again; if it persists, look at the grader's log of a graded notebook")
    mode = verdict.sandbox
    summary = f"a kernel ran a cell in the sandbox ({mode}, {time.monotonic() - started:.1f} s)"
    if mode != "bubblewrap":
        return Check("sandbox kernel", False, summary + ", but without bubblewrap", "see the bubblewrap line above")
    return Check("sandbox kernel", True, summary)


def shown_url(db_url):
    """``db_url`` with its password replaced by ***."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show nothing that could hold a secret
        return db_url.split("://", 1)[0] + "://..."


def check_gradebook(course):
    from nbgrader.api import get_alembic_version
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url

    from .course import db_url as course_db_url
    db_url = course_db_url(course)
    shown = shown_url(db_url)
    try:
        url = make_url(db_url)
    except Exception as error:
        return Check("gradebook", False, f"{shown} is not a database URL ({error})",
                     "set c.CourseDirectory.db_url (or BACKPROP_LAB_DB_URL), e.g. postgresql+psycopg://user@host/db")
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = os.path.abspath(url.database)
        if not os.path.exists(path):
            folder = os.path.dirname(path)
            if os.access(folder, os.W_OK | os.X_OK):
                return Check("gradebook", True, f"{shown}: not created yet (nbgrader generate_assignment creates it)")
            return Check("gradebook", False, f"{shown}: {folder} is not writable", f"chown {_user()} {folder}")
        if not os.access(path, os.R_OK | os.W_OK) or not os.access(os.path.dirname(path), os.W_OK):
            return Check("gradebook", False, f"{shown}: not writable by {_user()} (SQLite also needs its folder writable)",
                         f"chown {_user()} {path} {os.path.dirname(path)}")
    try:
        engine = create_engine(db_url, connect_args={"connect_timeout": 10} if url.get_backend_name() == "postgresql" else {})
        try:
            with engine.connect() as connection:
                tables = set(inspect(connection).get_table_names())
                version = (connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
                           if "alembic_version" in tables else None)
        finally:
            engine.dispose()
    except ModuleNotFoundError as error:
        return Check("gradebook", False, f"{shown}: no driver ({error})", "pip install 'psycopg[binary]'   (PostgreSQL)")
    except Exception as error:
        message = str(error).splitlines()[0][:300]
        if url.password:
            message = message.replace(url.password, "***")
        return Check("gradebook", False, f"{shown}: cannot connect ({type(error).__name__}: {message})",
                     "is the database server running and the URL right? (c.CourseDirectory.db_url or BACKPROP_LAB_DB_URL)")
    if not tables:
        return Check("gradebook", True, f"{shown}: connected, empty (nbgrader generate_assignment fills it)")
    if version is not None and version != get_alembic_version():
        return Check("gradebook", False, f"{shown}: schema version {version}, this nbgrader expects {get_alembic_version()}",
                     "back up the gradebook, then: nbgrader db upgrade")
    return Check("gradebook", True, f"{shown}: connected, nbgrader schema {version or 'unversioned'}")


def check_exchange(course):
    config = _config(course)
    root = config.get("Exchange", {}).get("root") or DEFAULT_EXCHANGE
    course_id = config.get("CourseDirectory", {}).get("course_id") or ""
    make = f"sudo mkdir -p {root} && sudo chmod 0777 {root}"
    if not os.path.isdir(root):
        return Check("exchange", False, f"{root} does not exist: release, fetch, submit and collect need it",
                     f"{make}\n(or set c.Exchange.root in nbgrader_config.py to a folder every student can write)")
    mode = stat.S_IMODE(os.stat(root).st_mode)
    if mode & 0o777 != 0o777:
        return Check("exchange", False, f"{root} has mode {oct(mode)}; nbgrader needs 0777 (every student submits into it)",
                     f"sudo chmod 0777 {root}")
    course_path = os.path.join(root, course_id)
    if course_id and os.path.isdir(course_path):
        inbound = os.path.join(course_path, "inbound")
        if os.path.isdir(inbound):
            inbound_mode = stat.S_IMODE(os.stat(inbound).st_mode)
            if inbound_mode & 0o733 != 0o733:
                return Check("exchange", False, f"{inbound} has mode {oct(inbound_mode)}: students cannot submit",
                             f"chmod 2733 {inbound}")
            if not os.access(inbound, os.R_OK | os.X_OK):
                return Check("exchange", False, f"{inbound} is not readable by {_user()}: collect cannot read submissions",
                             f"run as the instructor who released the course, or chown {_user()} {inbound}")
        return Check("exchange", True, f"{root} (0777), course {course_id} set up")
    return Check("exchange", True, f"{root} (0777); nbgrader release_assignment creates {course_id or 'the course'} in it")


def _user():
    import pwd
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def run_checks(course):
    """Every check, in order; each failure becomes a ✗ line, never an exception."""
    checks = []

    def run(name, function, *args):
        try:
            checks.append(function(*args))
        except Exception as error:
            checks.append(Check(name, False, f"the check itself failed: {type(error).__name__}: {error}"))
    run("course folder", check_course, course)
    run("nbgrader config", check_config, course)
    run("bubblewrap", check_bubblewrap)
    try:
        python = sandbox_python(course)
    except Exception:  # an unreadable config is reported above
        python = sys.executable
    run("sandbox Python", check_python, python)
    run("sandbox kernel", check_kernel, python)
    run("gradebook", check_gradebook, course)
    run("exchange", check_exchange, course)
    return checks


def cmd_doctor(course):
    checks = run_checks(course)
    for check in checks:
        for line in check.lines():
            print(line)
    failed = [check for check in checks if not check.ok]
    print(f"\n{len(failed)} problem(s) found; fix them before grading." if failed else "\nReady to grade.")
    return 1 if failed else 0

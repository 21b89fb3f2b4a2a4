"""Host side of the sandbox: build the bubblewrap command line, apply limits, watch the run.

The sandbox sees the system's read-only runtime (``/usr``, ``/etc``, the Python installation
with the ``grader`` and ``solutions`` packages masked), the runner code at ``/bpl``, and three
private writable folders: the submission's working copy, the job folder and a home. Nothing of
the course (gradebook, ``source/``, other students, ``solutions/``) is mounted. The network,
PIDs, IPC and hostname are unshared, the environment is cleared, and when the grader runs as
root the student code drops to an unprivileged uid so that the process limit holds.
"""
import dataclasses
import functools
import json
import logging
import os
import random
import resource
import select
import shutil
import signal
import site
import struct
import subprocess
import sys
import tempfile
import time

RUNNER_DIR = os.path.dirname(os.path.abspath(__file__))
SANDBOX_ROOT = "/sandbox"
# Our own packages (the judge and the reference solutions), and the autodiff libraries that
# would do a student's backpropagation for them: installed for the instructor, absent here.
MASKED_PACKAGES = ("grader", "solutions", "torch", "functorch", "jax", "tensorflow", "autograd")
log = logging.getLogger("backprop_lab.sandbox")
BLOCKED_PACKAGE = (
    "raise ModuleNotFoundError(f'No module named {__name__!r} while grading: '\n"
    "                          'the course is done with NumPy alone', name=__name__)\n")


@dataclasses.dataclass
class Limits:
    """Resource limits for one notebook's run (seconds, bytes, counts)."""

    cell_timeout: float = 60
    probe_timeout: float = 20
    notebook_timeout: float = 600
    memory_bytes: int = 4 * 2**30
    max_processes: int = 256
    max_file_bytes: int = 256 * 2**20
    max_disk_bytes: int = 1 * 2**30
    max_output_bytes: int = 200_000
    max_restarts: int = 25


@dataclasses.dataclass
class RunResult:
    """What the runner reported (its frames, read outside the sandbox) and how the run ended.

    ``cells``: {index: {"failed", "outputs", "note"}}; ``probes``: {probe id: {"status", ...}},
    where an ``ok`` probe's encoded result is the file ``results_dir/<id>.bin``, written here,
    outside the sandbox; ``done``: the runner's closing frame, empty if it never came.
    """

    mode: str                # "bubblewrap" or "limits-only"
    results_dir: str
    returncode: int
    seconds: float
    killed_because: str = ""
    runner_stderr: str = ""
    cells: dict = dataclasses.field(default_factory=dict)
    probes: dict = dataclasses.field(default_factory=dict)
    done: dict = dataclasses.field(default_factory=dict)

    @property
    def fatal(self):
        """Why the run stopped early ('' when it ran to its end)."""
        if self.killed_because:
            return self.killed_because
        if not self.done:
            return "the grader's runner stopped before it finished (killed by the submission, or crashed)"
        return str(self.done.get("fatal", ""))[:500]


@functools.lru_cache(maxsize=1)
def bubblewrap():
    """Path of a working ``bwrap``, or None (then grading runs with limits only)."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    probe = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "true"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        log.warning("bwrap is installed but cannot create a sandbox here: %s", probe.stderr.decode(errors="replace").strip())
        return None
    return path


class InfrastructureError(RuntimeError):
    """The grader itself cannot run a notebook: the sandbox, the runner or the kernel failed to start.

    Not a student's fault, so never scored: the notebook fails loudly instead (nbgrader's own
    error path), and a batch stops before it records grades made by a broken grader.
    """


def _python_roots(python):
    """Folders the sandbox needs to run this interpreter, with its packages.

    A venv's ``bin/python`` is a symlink to the base interpreter; running the link (not its
    target) is what makes Python find ``pyvenv.cfg`` and the venv's site-packages, so the venv
    (``sys.prefix``, as named and resolved) and the base installation are all mounted.
    """
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        prefixes = {sys.base_prefix, sys.prefix}
    else:
        prefixes = set(_prefixes_of(python)[0])
    roots = {os.path.realpath(p) for p in prefixes} | {os.path.abspath(p) for p in prefixes}
    roots |= {os.path.dirname(os.path.realpath(python)), os.path.dirname(os.path.abspath(python))}
    kept = []
    for root in sorted(roots):  # a root inside another one is mounted with it
        if not any(root == other or root.startswith(other.rstrip("/") + "/") for other in kept):
            kept.append(root)
    return kept


@functools.lru_cache(maxsize=8)
def _prefixes_of(python):
    """``sys.prefix`` and ``sys.base_prefix`` of another interpreter (the configured sandbox Python)."""
    try:
        found = subprocess.run([python, "-I", "-c", "import site, sys; print(sys.prefix); print(sys.base_prefix); "
                                "print(*site.getsitepackages(), site.getusersitepackages(), sep='\\n')"],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        raise InfrastructureError(f"the sandbox's Python {python} cannot be run: {error}") from None
    if found.returncode != 0:
        raise InfrastructureError(f"the sandbox's Python {python} cannot be run: {found.stderr.strip()[-300:]}")
    lines = found.stdout.splitlines()
    return tuple(lines[:2]), tuple(lines[2:])


def _masked_paths(python):
    """Installed packages that must not be visible to student code (see ``MASKED_PACKAGES``)."""
    found = []
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        directories = site.getsitepackages() + [site.getusersitepackages()]
    else:
        directories = list(_prefixes_of(python)[1])
    for directory in directories:
        for name in MASKED_PACKAGES:
            path = os.path.realpath(os.path.join(directory, name))
            if os.path.isdir(path):
                found.append(path)
    return found


def _environment(home):
    env = {
        "HOME": home,
        "PATH": os.path.dirname(sys.executable) + ":/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "MPLCONFIGDIR": os.path.join(home, ".matplotlib"),
        "JUPYTER_RUNTIME_DIR": os.path.join(home, "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": os.path.join(home, ".ipython"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "BACKPROP_LAB_GRADING": "1",
    }
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # needed for correct BLAS on some CPUs
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _bwrap_command(bwrap, work, job, home, run_as, python, report_fd):
    cmd = [bwrap, "--die-with-parent", "--new-session",
           "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
           "--hostname", "sandbox", "--clearenv"]
    inside_home = f"{SANDBOX_ROOT}/home"
    for key, value in _environment(inside_home).items():
        cmd += ["--setenv", key, value]
    cmd += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for link in ("bin", "lib", "lib32", "lib64", "sbin"):
        path = f"/{link}"
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    # /tmp and /dev/shm are folders of the job's root on disk, not tmpfs (RAM): the disk watchdog
    # sees what is written there and stops the run at its limit.
    scratch = os.path.dirname(work)
    cmd += ["--proc", "/proc", "--dev", "/dev",
            "--bind", os.path.join(scratch, "tmp"), "/tmp", "--bind", os.path.join(scratch, "shm"), "/dev/shm",
            "--ro-bind", RUNNER_DIR, "/bpl",
            "--perms", "0755", "--dir", SANDBOX_ROOT,
            "--bind", work, f"{SANDBOX_ROOT}/work",
            "--bind", job, f"{SANDBOX_ROOT}/job",
            "--bind", home, inside_home,
            "--chdir", f"{SANDBOX_ROOT}/work"]
    # After /tmp: an interpreter or venv under /tmp is mounted over the sandbox's own /tmp.
    for root in _python_roots(python):
        if not root.startswith("/usr/"):
            # bwrap copies the mode of missing parents (a 0700 /root would lock the sandbox uid out)
            parents = []
            parent = os.path.dirname(root)
            while parent != "/":
                parents.insert(0, parent)
                parent = os.path.dirname(parent)
            for path in parents:
                cmd += ["--perms", "0755", "--dir", path]
            cmd += ["--ro-bind", root, root]
    for path in _masked_paths(python):  # a package whose import fails with a clear message
        cmd += ["--ro-bind", os.path.join(os.path.dirname(work), "blocked"), path]
    if run_as is not None:
        cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                "/usr/bin/setpriv", f"--reuid={run_as}", f"--regid={run_as}", "--clear-groups",
                "--inh-caps=-all", "--"]
    else:
        cmd += ["--"]
    return cmd + [python, "-I", "/bpl/runner.py", f"{SANDBOX_ROOT}/job", str(report_fd)]


def _set_limits(limits, run_as):
    def apply():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if run_as is None:
            # Without a uid of its own the sandbox shares the grader's process count.
            current = len([p for p in os.listdir("/proc") if p.isdigit()])
            nproc = current + limits.max_processes
        else:
            nproc = limits.max_processes
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    return apply


def _disk_usage(path, cap_entries=20_000):
    total, entries = 0, 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    if entries > cap_entries:
                        return total, entries
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total, entries


def _chown_tree(path, uid):
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, uid)
        for name in files:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


def _font_cache():
    """matplotlib's font list for this machine, built once and kept in the grader's cache folder.

    Every sandbox starts with an empty home, where matplotlib would rebuild this list on first
    import (0.7 s per notebook). Font paths are the same inside the sandbox, which sees the
    same read-only /usr and Python installation.
    """
    base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "backprop-lab", "matplotlib")
    found = [name for name in os.listdir(base) if name.startswith("fontlist")] if os.path.isdir(base) else []
    if not found:
        try:
            os.makedirs(base, exist_ok=True)
            scratch = tempfile.mkdtemp(dir=base)
            subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"], capture_output=True, timeout=120,
                           env={"MPLCONFIGDIR": scratch, "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            for name in os.listdir(scratch):
                if name.startswith("fontlist"):
                    os.replace(os.path.join(scratch, name), os.path.join(base, name))
                    found.append(name)
            shutil.rmtree(scratch, ignore_errors=True)
        except (OSError, subprocess.SubprocessError) as error:
            log.info("no matplotlib font cache for the sandbox (%s); each notebook builds its own", error)
    return [os.path.join(base, name) for name in found]


def _seed_font_cache(folder):
    os.makedirs(folder, exist_ok=True)
    for path in _font_cache():
        shutil.copy(path, folder)


def prepare(submission_dir, max_disk_bytes):
    """A private temporary root with a copy of the submission; returns (root, work, job, home)."""
    root = tempfile.mkdtemp(prefix="backprop-lab-")
    os.chmod(root, 0o711)
    work, job, home = (os.path.join(root, name) for name in ("work", "job", "home"))
    # Only folders and regular files are copied, never through a link: a submission's link to
    # the gradebook or to /dev/zero, or a FIFO, stays outside (see grader.safe_io).
    from .. import safe_io
    skipped = safe_io.copy_tree_regular(submission_dir, work, ignore=(".ipynb_checkpoints", "__pycache__", "*.ipynb"),
                                        max_bytes=max_disk_bytes)
    for line in skipped:
        log.warning("sandbox copy of %s: %s", submission_dir, line)
    size, entries = _disk_usage(work)
    if size > max_disk_bytes or entries > MAX_COPIED_ENTRIES:
        shutil.rmtree(work)
        os.mkdir(work)
        log.warning("submission folder %s holds %d MiB in %d entries: its extra files were not copied into the sandbox",
                    submission_dir, size // 2**20, entries)
    os.makedirs(os.path.join(job, "probes"))
    os.makedirs(home)
    _seed_font_cache(os.path.join(home, ".matplotlib"))
    for scratch in ("tmp", "shm"):
        os.makedirs(os.path.join(root, scratch))
    os.makedirs(os.path.join(root, "blocked"))
    with open(os.path.join(root, "blocked", "__init__.py"), "w") as handle:
        handle.write(BLOCKED_PACKAGE)
    os.chmod(os.path.join(root, "blocked"), 0o755)
    os.chmod(os.path.join(root, "blocked", "__init__.py"), 0o644)
    return root, work, job, home


MAX_COPIED_ENTRIES = 5_000
MAX_FRAME_HEADER = 2**20
MAX_REPORT_BYTES = 512 * 2**20


class _FrameReader:
    """Reads the runner's frames from the pipe as they come; results go to files outside the sandbox."""

    def __init__(self, result, max_payload):
        self.result, self.max_payload = result, max_payload
        self.buffer = bytearray()
        self.total = 0
        self.problem = ""

    def feed(self, data):
        self.total += len(data)
        if self.total > MAX_REPORT_BYTES:
            self.problem = f"the runner's report passed {MAX_REPORT_BYTES // 2**20} MiB"
            return
        self.buffer += data
        while len(self.buffer) >= 8 and not self.problem:
            head_len, payload_len = struct.unpack(">II", self.buffer[:8])
            if head_len > MAX_FRAME_HEADER or payload_len > self.max_payload:
                self.problem = "the runner's report held an oversized frame"
                return
            if len(self.buffer) < 8 + head_len + payload_len:
                return
            head = bytes(self.buffer[8:8 + head_len])
            payload = bytes(self.buffer[8 + head_len:8 + head_len + payload_len])
            del self.buffer[:8 + head_len + payload_len]
            try:
                frame = json.loads(head)
            except (ValueError, RecursionError):
                frame = None
            if not isinstance(frame, dict):
                self.problem = "the runner's report held a malformed frame"
                return
            self._take(frame, payload)

    def _take(self, frame, payload):
        kind = frame.pop("kind", None)
        if kind == "ready":
            self.result.ready = True
        elif kind == "cell" and type(frame.get("index")) is int:
            self.result.cells[frame.pop("index")] = frame
        elif kind == "probe" and isinstance(frame.get("id"), str) and frame["id"].isalnum():
            probe_id = frame.pop("id")
            if frame.get("status") == "ok":
                with open(os.path.join(self.result.results_dir, f"{probe_id}.bin"), "wb") as handle:
                    handle.write(payload)
            self.result.probes[probe_id] = frame
        elif kind == "done":
            self.result.done = frame
        else:
            self.problem = "the runner's report held a frame of unknown kind"


def run(root, limits, python=None):
    """Run the job prepared under ``root``; returns a RunResult. Never raises for student faults.

    Raises :class:`InfrastructureError` when the runner never got a kernel going (it reports
    ``ready`` before any student code runs), since only the grader is to blame for that.
    """
    python = python or sys.executable
    work, job, home = (os.path.join(root, name) for name in ("work", "job", "home"))
    results_dir = os.path.join(root, "results")  # not mounted in the sandbox
    os.makedirs(results_dir, exist_ok=True)
    bwrap = bubblewrap()
    run_as = None
    if bwrap is not None and os.geteuid() == 0:
        run_as = random.randint(61000, 64999)
        for path in (work, job, home, os.path.join(root, "tmp"), os.path.join(root, "shm")):
            _chown_tree(path, run_as)
    report_read, report_write = os.pipe()
    if bwrap is not None:
        cmd = _bwrap_command(bwrap, work, job, home, run_as, python, report_write)
        mode, env, cwd = "bubblewrap", None, None
    else:
        log.warning("!!! NO SANDBOX: bubblewrap (bwrap) is missing or unusable, so student code runs with "
                    "resource limits only and can read whatever this user can read. Install the Debian package "
                    "'bubblewrap' before grading real submissions. !!!")
        cmd = [python, "-I", os.path.join(RUNNER_DIR, "runner.py"), job, str(report_write)]
        mode, env, cwd = "limits-only", _environment(home), work
    result = RunResult(mode=mode, results_dir=results_dir, returncode=-1, seconds=0.0)
    result.ready = False
    reader = _FrameReader(result, max_payload=64 * 2**20 + 2**16)
    stdout_path = os.path.join(root, "runner.out")
    started = time.monotonic()
    killed = ""
    watched = [os.path.join(root, name) for name in ("work", "job", "home", "tmp", "shm")]
    try:
        with open(stdout_path, "wb") as sink:
            try:
                process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                           env=env, cwd=cwd, preexec_fn=_set_limits(limits, run_as),
                                           pass_fds=(report_write,))
            except OSError as error:
                raise InfrastructureError(f"the sandbox could not be started ({cmd[0]}: {error})") from None
            finally:
                os.close(report_write)
            os.set_blocking(report_read, False)
            exited = _exit_waiter(process)
            last_disk_check = 0.0
            while True:
                readable, _, _ = select.select([report_read], [], [], 0.2)
                if readable:
                    try:
                        data = os.read(report_read, 1 << 20)
                    except BlockingIOError:
                        data = None
                    if data:
                        reader.feed(data)
                    elif data == b"" and exited(5):  # the pipe closed: the runner is gone
                        break
                elif exited(0):
                    _drain(report_read, reader)
                    break
                elapsed = time.monotonic() - started
                if reader.problem:
                    killed = reader.problem
                elif elapsed > limits.notebook_timeout:
                    killed = f"the notebook ran past its {limits.notebook_timeout:.0f} s limit"
                elif elapsed - last_disk_check > 0.2:
                    last_disk_check = elapsed
                    used = entries = 0
                    for folder in watched:
                        size, count = _disk_usage(folder)
                        used, entries = used + size, entries + count
                    if used > limits.max_disk_bytes or entries >= 20_000:
                        killed = f"the submission wrote more than {limits.max_disk_bytes // 2**20} MiB or 20,000 files"
                if killed:
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    process.wait()
                    break
    finally:
        os.close(report_read)
    with open(stdout_path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(stdout_path) - 4000))
        tail = handle.read().decode(errors="replace")
    result.returncode, result.seconds = process.returncode, time.monotonic() - started
    result.killed_because, result.runner_stderr = killed, tail
    if not result.ready:
        why = killed or f"the runner exited with {process.returncode}"
        raise InfrastructureError(f"the sandbox's kernel never started ({why}; sandbox Python {python}): "
                                  f"{_last_lines(tail)}")
    return result


def _drain(fd, reader):
    while True:
        try:
            data = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        if not data:
            return
        reader.feed(data)


def _last_lines(text, count=3):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])[-600:] or "no output"


def _exit_waiter(process):
    """``wait(seconds)`` -> whether ``process`` has exited, waking the moment it does.

    ``Popen.wait(timeout)`` sleeps in steps of up to 50 ms; a pidfd (Linux 5.3+) becomes
    readable exactly when the process ends.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        pidfd = None

    def wait(seconds):
        if pidfd is not None:
            select.select([pidfd], [], [], seconds)
        else:
            try:
                process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                pass
        if process.poll() is None:
            return False
        if pidfd is not None:
            os.close(pidfd)
        return True
    return wait


def cleanup(root):
    shutil.rmtree(root, ignore_errors=True)

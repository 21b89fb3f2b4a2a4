"""Executes a student's notebook code and the judge's probes in a real Jupyter kernel.

Runs INSIDE the sandbox (bubblewrap, or limits only), as ``python runner.py JOB_DIR REPORT_FD``.
It reads ``JOB_DIR/job.json``:

* ``cells``: the student's code cells, in notebook order (grade cells are not among them);
* ``probes``: probe ids; each ``JOB_DIR/probes/<id>/`` holds ``code.py`` and ``inputs.bin``;
* limits: ``cell_timeout``, ``probe_timeout`` (``probe_timeouts`` overrides it per probe),
  ``max_output_bytes``, ``max_restarts``;
* ``groups``: the probe ids of each check, so that a check whose call timed out or crashed
  skips its remaining calls.

Why the report travels this way. The kernel runs student code as the same user as this runner,
so anything the runner could write to disk, the kernel could write too, before or after the
runner (a forged ``cells.json``, a probe result rewritten by a background thread once its
probe had ended). So nothing the judge uses goes through a file:

* a probe's result leaves the kernel as one Jupyter message (a display of ``RESULT_MIME``)
  while the probe's cell runs; once the cell is done, the bytes live in this process's memory,
  where the kernel cannot reach them (this process is non-dumpable: no ptrace, no
  ``/proc/<pid>/mem``);
* this runner forwards each result, each cell's outputs and its own notes as frames on
  ``REPORT_FD``, a pipe to the grader outside the sandbox that the kernel never inherits and,
  the runner being non-dumpable, cannot open through ``/proc/<pid>/fd`` either.

The kernel can still kill or stop this runner (same uid); then the report simply ends, the
grader sees a run that stopped early, and the checks not yet reported are lost: the
submission's own loss, never a forged pass. A second uid for the kernel would need root, and
an unprivileged instructor has none; this design holds for both.

Frames are ``struct ">II"`` (header length, payload length), a JSON header, the payload:
``ready`` once the kernel answers (failures before it are the grader's, not the student's),
``cell`` per student cell, ``probe`` per probe (payload: the codec's bytes), ``done`` at the end.
When the kernel dies or a cell or probe overruns its time, the kernel is restarted and the
student's cells are replayed, so the failure costs only what it touched.
"""
import ctypes
import json
import os
import queue
import base64
import binascii
import shutil
import signal
import struct
import sys
import time

_T0 = time.monotonic()
# jsonschema (under nbformat) builds an RFC 3987 Earley parser at import when the optional
# rfc3987-syntax package is installed: 2-3 s per start, for a format check nothing here uses.
sys.modules.setdefault("rfc3987_syntax", None)
import nbformat
import zmq
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.paths import jupyter_path
from jupyter_core.utils import ensure_async
from nbclient import NotebookClient
from nbclient.exceptions import CellControlSignal, CellTimeoutError, DeadKernelError
from traitlets import default

SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe_support.py")
# The probe support module is loaded once per kernel and kept in sys.modules. Student code can
# replace it, but then only spoils its own results: the judge checks every value it gets back.
PROBE_CELL = (
    "import sys as __bpl_sys\n"
    "if '__bpl_probe_support' not in __bpl_sys.modules:\n"
    "    import importlib.util as __bpl_u\n"
    "    __bpl_s = __bpl_u.spec_from_file_location('__bpl_probe_support', {support!r})\n"
    "    __bpl_sys.modules['__bpl_probe_support'] = __bpl_u.module_from_spec(__bpl_s)\n"
    "    __bpl_s.loader.exec_module(__bpl_sys.modules['__bpl_probe_support'])\n"
    "    del __bpl_u, __bpl_s\n"
    "__bpl_sys.modules['__bpl_probe_support'].run({probe_dir!r}, globals())\n"
    "del __bpl_sys\n"
)
KEPT_MIME = ("text/plain", "image/png")
RESULT_MIME = "application/x-backprop-lab-result"
MAX_RESULT_BYTES = 64 * 2**20            # one probe's encoded result
# A kernel that prints gigabytes sends them in a few huge messages; taking one in would exhaust
# this runner's memory. ZeroMQ drops a peer whose message is larger than this instead (a
# result is base64 in JSON: 4/3 of its size).
MAX_MESSAGE_BYTES = MAX_RESULT_BYTES * 4 // 3 + 2**20


def bounded_client(client_class):
    """``client_class`` whose ZeroMQ sockets refuse messages over ``MAX_MESSAGE_BYTES``."""
    class BoundedKernelClient(client_class):
        def _context_default(self):
            context = super()._context_default()
            context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            return context

        async def wait_for_ready(self, timeout=None):
            """jupyter_client's wait for a kernel, without its closing 0.2 s wait on IOPub.

            Like jupyter_client: the kernel is ready once it answered ``kernel_info`` and a
            message came through IOPub (so the subscription is live). jupyter_client then
            waits until IOPub has been quiet for 0.2 s, on every kernel start; here what is
            already queued is drained and nothing more is awaited: nbclient matches every
            IOPub message to its own request and drops the rest.
            """
            deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    reply = await ensure_async(self.shell_channel.get_msg(timeout=1))
                except queue.Empty:
                    reply = None
                if reply is not None and reply["msg_type"] == "kernel_info_reply":
                    try:
                        await ensure_async(self.iopub_channel.get_msg(timeout=0.2))
                    except queue.Empty:
                        pass
                    else:
                        self._handle_kernel_info_reply(reply)
                        break
                if not await ensure_async(self._async_is_alive()):
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")
            while True:
                try:
                    await ensure_async(self.iopub_channel.get_msg(timeout=0))
                except queue.Empty:
                    break
    return BoundedKernelClient


class PythonKernelSpecs(KernelSpecManager):
    """jupyter_client's kernel spec lookup without importing IPython into this runner.

    The stock lookup imports IPython (0.2 s of CPU) only to add ``~/.ipython/kernels`` to its
    search path; in the sandbox that folder is in a fresh, empty home.
    """

    @default("kernel_dirs")
    def _kernel_dirs_default(self):
        return jupyter_path("kernels")


PR_SET_CHILD_SUBREAPER = 36
PR_SET_DUMPABLE = 4


def hold_probes(job_dir, probe_ids):
    """Read every probe (code and hidden inputs) into memory and delete it from disk.

    Student code runs as the same user as this runner, so anything on disk is readable from a
    student cell. Each probe's files go back to disk just before that probe runs and are
    removed after it; this process is made non-dumpable so its memory cannot be read through
    ``/proc`` either.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    held = {}
    for probe_id in probe_ids:
        folder = os.path.join(job_dir, "probes", probe_id)
        files = {}
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                with open(path, "rb") as handle:
                    files[os.path.relpath(path, folder)] = handle.read()
        shutil.rmtree(folder)
        held[probe_id] = files
    return held


def put_back(folder, files):
    """Restore a probe's files, clearing any result a student's code planted there beforehand."""
    shutil.rmtree(folder, ignore_errors=True)
    for relative, data in files.items():
        path = os.path.join(folder, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)


def take_away(folder, files):
    for relative in files:
        try:
            os.remove(os.path.join(folder, relative))
        except OSError:
            pass


def become_subreaper():
    """Orphans of the kernel (daemons, fork-bomb children) become our children, so we can find them."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _parents():
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    return parents


def reap_strays(keep):
    """Kill every descendant of this runner except the processes in ``keep`` (the kernel)."""
    for _ in range(3):
        parents = _parents()
        me = os.getpid()
        strays = []
        for pid in parents:
            ancestor, hops = parents.get(pid), 0
            while ancestor not in (None, 0, me) and hops < 64:
                ancestor, hops = parents.get(ancestor), hops + 1
            if ancestor == me and pid not in keep:
                strays.append(pid)
        if not strays:
            return
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass


class BoundedClient(NotebookClient):
    """A NotebookClient that stops storing output past a byte budget per cell."""

    max_output_bytes = 200_000

    def output(self, outs, msg, display_id, cell_index):
        if RESULT_MIME in msg.get("content", {}).get("data", {}):
            return super().output(outs, msg, display_id, cell_index)  # bounded by MAX_MESSAGE_BYTES
        used = sum(len(json.dumps(o)) for o in outs if RESULT_MIME not in o.get("data", {}))
        if used > self.max_output_bytes:
            if not outs or outs[-1].get("name") != "truncated":
                outs.append(nbformat.v4.new_output(
                    "stream", name="truncated",
                    text=f"[output beyond {self.max_output_bytes} bytes dropped by the grader]\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)


def clean_outputs(outputs):
    """Keep plain text and PNG only; the instructor's side never renders student HTML or JS."""
    kept = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            kept.append({"output_type": "stream", "name": out.get("name") if out.get("name") in ("stdout", "stderr") else "stdout",
                         "text": str(out.get("text", ""))[:20_000]})
        elif kind == "error":
            kept.append({"output_type": "error", "ename": str(out.get("ename"))[:200],
                         "evalue": str(out.get("evalue"))[:2000], "traceback": [str(t)[:4000] for t in out.get("traceback", [])[-12:]]})
        elif kind in ("display_data", "execute_result"):
            data = {k: v for k, v in out.get("data", {}).items() if k in KEPT_MIME}
            if data:
                kept.append({"output_type": "display_data", "data": data, "metadata": {}})
    return kept


class Report:
    """The frames this runner sends the grader on ``REPORT_FD`` (see the module docstring)."""

    def __init__(self, fd):
        self.fd = fd
        os.set_inheritable(fd, False)

    def send(self, kind, header=None, payload=b""):
        head = json.dumps({"kind": kind, **(header or {})}).encode()
        data = struct.pack(">II", len(head), len(payload)) + head + payload
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


def take_result(outputs):
    """The probe's encoded result from its cell's outputs: (bytes, "") or (None, why not)."""
    found = [o["data"][RESULT_MIME] for o in outputs
             if o.get("output_type") == "display_data" and RESULT_MIME in o.get("data", {})]
    if len(found) != 1:
        return None, f"the probe sent {len(found)} results instead of one"
    text = found[0]
    if not isinstance(text, str) or len(text) > MAX_RESULT_BYTES * 4 // 3 + 8:
        return None, "the probe's result was not of the expected form"
    try:
        return base64.b64decode(text, validate=True), ""
    except (binascii.Error, ValueError):
        return None, "the probe's result was not of the expected form"


class Session:
    def __init__(self, job_dir, job, report):
        self.job_dir = job_dir
        self.job = job
        self.report = report
        self.work_dir = os.getcwd()
        # The kernel starts in an empty folder of the grader's and only then moves to the
        # submission's copy: a student's ``ipykernel_launcher.py`` there cannot replace the kernel.
        self.start_dir = os.path.join(job_dir, "kernel-start")
        cells = [nbformat.v4.new_code_cell(c["source"]) for c in job["cells"]]
        self.nb = nbformat.v4.new_notebook(cells=cells)
        self.nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        self.client = BoundedClient(
            self.nb, timeout=job["cell_timeout"], kernel_name="python3", allow_errors=True,
            interrupt_on_timeout=False, startup_timeout=60, iopub_timeout=4, shutdown_kernel="immediate",
            resources={"metadata": {"path": self.work_dir}})
        self.client.max_output_bytes = job["max_output_bytes"]
        self.restarts = 0
        self.cell_reports = [{"failed": False, "outputs": [], "note": ""} for _ in cells]

    def start(self):
        shutil.rmtree(self.start_dir, ignore_errors=True)
        os.makedirs(self.start_dir)
        self.client.km = self.client.create_kernel_manager()
        self.client.km.kernel_spec_manager = PythonKernelSpecs(data_dir=self.client.km.data_dir)
        self.client.km.client_factory = bounded_client(self.client.km.client_factory)
        self.client.start_new_kernel(cwd=self.start_dir)
        self.client.start_new_kernel_client()
        self._run_hidden(f"__import__('os').chdir({self.work_dir!r})", self.job["cell_timeout"])

    def _run_hidden(self, source, timeout):
        """Run ``source`` in the kernel as a cell of the grader's own; returns the cell."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        try:
            self._execute(len(self.nb.cells) - 1, timeout)
        finally:
            self.nb.cells.pop()
        return cell

    def stop(self):
        """Kill the kernel (and its process group) at once and reap it.

        jupyter_client's own "immediate" shutdown first interrupts the kernel, then polls every
        0.1 s until it is gone; nothing in the kernel is worth waiting for here.
        """
        process = getattr(getattr(self.client.km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # jupyter_client starts each kernel in its own session
            except OSError:
                try:
                    process.kill()
                except OSError:
                    pass
            try:
                process.wait(5)
            except Exception:
                pass
        try:
            self.client._cleanup_kernel()  # the kernel is dead: closes channels, removes the connection file
        except Exception:
            pass
        reap_strays(set())

    def restart(self, reason):
        self.restarts += 1
        self.stop()
        if self.restarts > self.job["max_restarts"]:
            raise RuntimeError(f"kernel restarted {self.restarts - 1} times; giving up ({reason})")
        self.start()
        self.replay()

    def kernel_pid(self):
        try:
            return self.client.km.provisioner.process.pid
        except AttributeError:
            return None

    def _execute(self, index, timeout):
        cell = self.nb.cells[index]
        self.client.timeout = timeout
        try:
            self.client.execute_cell(cell, index)
        finally:
            reap_strays({self.kernel_pid()})

    def run_cells(self):
        for index in range(len(self.nb.cells)):
            report = self.cell_reports[index]
            try:
                self._execute(index, self.job["cell_timeout"])
            except CellTimeoutError:
                report.update(failed=True, note=f"stopped after {self.job['cell_timeout']} s")
                self.restart(f"cell {index} timed out")
            except DeadKernelError:
                report.update(failed=True, note="the kernel died while running this cell")
                self.restart(f"cell {index} killed the kernel")
            except CellControlSignal:
                pass
            report["outputs"] = clean_outputs(self.nb.cells[index].get("outputs", []))
            if any(o.get("output_type") == "error" for o in report["outputs"]):
                report["failed"] = True
            self.report.send("cell", {"index": index, **report})

    def replay(self):
        """Re-run the student's cells quietly after a restart, skipping those that failed."""
        for index, cell in enumerate(self.nb.cells):
            if self.cell_reports[index]["failed"]:
                continue
            saved = cell.get("outputs", [])
            try:
                self._execute(index, self.job["cell_timeout"])
            except (CellTimeoutError, DeadKernelError):
                self.cell_reports[index]["failed"] = True
                self.stop()
                self.start()
            cell["outputs"] = saved

    def run_probe(self, probe_id, files):
        probe_dir = os.path.join(self.job_dir, "probes", probe_id)
        put_back(probe_dir, files)
        try:
            outcome, result = self._run_probe(probe_id, probe_dir)
        finally:
            take_away(probe_dir, files)
        self.report.send("probe", {"id": probe_id, **outcome}, result or b"")
        if outcome["status"] != "ok":  # the kernel is dead, stuck, or its probe machinery was tampered with
            self.restart(outcome["status"])
        return outcome

    def _run_probe(self, probe_id, probe_dir):
        timeout = self.job.get("probe_timeouts", {}).get(probe_id, self.job["probe_timeout"])
        started = time.monotonic()
        try:
            cell = self._run_hidden(PROBE_CELL.format(support=SUPPORT, probe_dir=probe_dir), timeout)
        except CellTimeoutError:
            return {"status": "timeout", "message": f"did not finish within {timeout:g} s"}, None
        except DeadKernelError:
            return {"status": "crashed", "message": "the kernel died (os._exit, a segfault or the memory limit)"}, None
        seconds = time.monotonic() - started
        outputs = cell.get("outputs", [])
        result, problem = take_result(outputs)
        if result is None:
            errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in outputs if o.get("output_type") == "error"]
            detail = f" ({errors[0][:300]})" if errors else f" ({problem})"
            return {"status": "no-result", "message": f"the probe produced no result{detail}"}, None
        return {"status": "ok", "seconds": seconds}, result


def main(job_dir, report_fd):
    report = Report(report_fd)
    with open(os.path.join(job_dir, "job.json")) as handle:
        job = json.load(handle)
    become_subreaper()
    held = hold_probes(job_dir, job["probes"])
    session = Session(job_dir, job, report)
    started = time.monotonic()
    phases = {"imports": started - _T0}
    session.start()  # a failure here is the grader's: no student code has run yet
    phases["kernel_start"] = time.monotonic() - started
    report.send("ready", {"phases": phases})
    fatal = ""
    try:
        session.run_cells()
        phases["cells"] = time.monotonic() - started - phases["kernel_start"]
        # Once a call overran its time or killed the kernel, the other calls of the same check
        # cannot change its verdict: they are skipped rather than waited for.
        group_of = {probe_id: number for number, group in enumerate(job.get("groups", [])) for probe_id in group}
        stopped = {}
        for probe_id in job["probes"]:
            files = held.pop(probe_id)
            group = group_of.get(probe_id)
            if group is not None and group in stopped:
                report.send("probe", {"id": probe_id, "status": "skipped",
                                      "message": f"not run, because an earlier call of this check {stopped[group]}"})
                continue
            outcome = session.run_probe(probe_id, files)
            if outcome["status"] in ("timeout", "crashed") and group is not None:
                stopped[group] = "timed out" if outcome["status"] == "timeout" else "killed the kernel"
        phases["probes"] = time.monotonic() - started - phases["kernel_start"] - phases["cells"]
    except Exception as error:
        fatal = f"{type(error).__name__}: {error}"
    finally:
        stopping = time.monotonic()
        session.stop()
        phases["stop"] = time.monotonic() - stopping
    report.send("done", {"restarts": session.restarts, "fatal": fatal,
                         "seconds": time.monotonic() - started, "phases": phases})


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

"""Runs one probe inside the student's kernel (in the sandbox) and saves its result.

A probe is the body of a function the judge wrote; it sees ``inputs`` (decoded from plain
data) and the student's namespace as its globals, and returns a value the codec can carry.
The result leaves the kernel as one display message of ``RESULT_MIME`` (see runner.py for why
not a file). Nothing printed here is trusted: the judge checks every value it gets back, and a
student who tampers with this module can only spoil their own results.
"""
import base64
import importlib.util
import os
import sys
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("_bpl_codec", os.path.join(_HERE, "codec.py"))
codec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(codec)


def _student_frame(tb):
    """The innermost traceback entry that is in the student's notebook code."""
    found = None
    for frame in traceback.extract_tb(tb):
        if not frame.filename.startswith(("<probe", _HERE)) and "site-packages" not in frame.filename:
            found = frame
    return found


def select(value, mode, count):
    """Pick the compared outputs from a return value; a marker dict describes a wrong form."""
    if mode == "single":
        return [value]
    if type(value) not in (tuple, list):
        return {"__bad_return__": f"returned {type(value).__name__}, expected a tuple"}
    expected = 2 if mode == "pair" else count
    if len(value) != expected:
        return {"__bad_return__": f"returned a tuple of {len(value)} values, expected {expected}"}
    return [value[0]] if mode == "pair" else list(value)


RESULT_MIME = "application/x-backprop-lab-result"


def run(probe_dir, user_ns):
    """Execute ``probe_dir/code.py`` against ``user_ns`` and send the result to the runner."""
    with open(os.path.join(probe_dir, "inputs.bin"), "rb") as handle:
        inputs = codec.decode(handle.read())
    with open(os.path.join(probe_dir, "code.py"), encoding="utf-8") as handle:
        body = handle.read()
    source = "def __bpl_probe(inputs, select):\n" + "".join("    " + line + "\n" for line in body.splitlines())
    scope = {}
    exec(compile(source, f"<probe {os.path.basename(probe_dir)}>", "exec"), user_ns, scope)
    status = {"status": "ok"}
    started = time.monotonic()
    try:
        value = scope["__bpl_probe"](inputs, select)
    except BaseException as error:  # SystemExit and KeyboardInterrupt cost only this probe
        value = None
        where = _student_frame(error.__traceback__)
        status = {
            "status": "error",
            "type": type(error).__name__,
            "message": str(error)[:400],
            "line": where.line[:200] if where and where.line else "",
        }
    status["seconds"] = time.monotonic() - started
    data = base64.b64encode(codec.encode({"status": status, "value": value})).decode("ascii")
    from IPython.display import publish_display_data
    sys.stdout.flush()
    publish_display_data({RESULT_MIME: data})

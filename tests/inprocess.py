"""Running hidden-check probes in-process, as the sandbox would, for fast tests of the cases.

A probe's code runs against a namespace standing in for the student's kernel; its inputs and its
result go through the same codec as in the sandbox, so the judge sees exactly what it would see.
"""
import textwrap

import numpy as np

from grader.cases import Outcome, get_case
from grader.sandbox import codec
from grader.sandbox.probe_support import select


def roundtrip(value):
    """``value`` after a trip through the codec (to the bytes the kernel sends, and back)."""
    return codec.decode(codec.encode(value))


def namespace(*sources):
    """A stand-in for a student's kernel: numpy as np, then each source executed in order."""
    names = {"np": np}
    for source in sources:
        exec(textwrap.dedent(source), names)
    return names


def run_probe(probe, names):
    """The Outcome of one probe run against ``names``."""
    source = "def __bpl_probe(inputs, select):\n" + textwrap.indent(probe.code, "    ")
    exec(compile(source, "<probe>", "exec"), names)
    try:
        with np.errstate(all="ignore"):
            value = names.pop("__bpl_probe")(roundtrip(probe.inputs), select)
    except Exception as error:
        return Outcome("error", message=str(error), error_type=type(error).__name__)
    return Outcome("ok", value=roundtrip(value))


def judge(function, kind, names, seed):
    """The CheckResult of ``function``'s ``kind`` check with inputs from ``seed``."""
    check = get_case(function).build(kind, np.random.default_rng(seed))
    with np.errstate(all="ignore"):
        return check.evaluate([run_probe(probe, names) for probe in check.probes])

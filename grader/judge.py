"""The judge: turns grade-cell declarations into probes, runs them in the sandbox, scores.

A grade cell (an nbgrader autograder-test cell) declares its checks in its hidden region::

    ### BEGIN HIDDEN TESTS
    judge("affine_backward", gradient=3, no_mutation=1)
    ### END HIDDEN TESTS

The judge reads that with ``ast`` (it never executes a cell), draws inputs from a per-run seed,
runs the student's cells and the probes in one sandboxed kernel, and scores each check in this
process, which never imports or runs student code. Each grade cell gets the judge's message as
stdout and its score as an ``execute_result``: nbgrader's own partial-credit rule then records it.
"""
import ast
import base64
import binascii
import dataclasses
import json
import logging
import os
import re
import zlib

import nbformat
import numpy as np

from . import safe_io
from .cases import CheckResult, InternalCheckError, Outcome, get_case
from .sandbox import codec, launch

log = logging.getLogger("backprop_lab.judge")
SPEC_CALL = "judge"
KIND_LABELS = {"no_mutation": "no mutation"}


class SpecError(ValueError):
    """A grade cell's declaration cannot be read."""


@dataclasses.dataclass
class Spec:
    function: str
    points: dict  # kind -> points, in declaration order


def parse_spec(source):
    """Read the ``judge("name", kind=points, ...)`` call of a grade cell; None if there is none."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise SpecError(f"grade cell does not parse: {error}") from None
    calls = [node.value for node in tree.body if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
             and isinstance(node.value.func, ast.Name) and node.value.func.id == SPEC_CALL]
    if not calls:
        return None
    if len(calls) > 1:
        raise SpecError("a grade cell declares one function; split the judge(...) calls into separate cells")
    call = calls[0]
    if len(call.args) != 1 or not isinstance(call.args[0], ast.Constant) or not isinstance(call.args[0].value, str):
        raise SpecError('judge(...) takes the function name as its only positional argument, e.g. judge("affine_forward", value=2)')
    points = {}
    for keyword in call.keywords:
        try:
            value = ast.literal_eval(keyword.value)
        except ValueError:
            raise SpecError(f"points for {keyword.arg!r} must be a number") from None
        if keyword.arg is None or isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SpecError(f"points for {keyword.arg!r} must be a non-negative number")
        points[keyword.arg] = float(value)
    if not points:
        raise SpecError("judge(...) awards no points; give at least one check, e.g. value=2")
    return Spec(call.args[0].value, points)


def derive_rng(seed, *labels):
    """An rng for one check, independent of the others and reproducible from the run's seed."""
    words = [seed % 2**32, seed // 2**32 % 2**32] + [zlib.crc32(label.encode()) for label in labels]
    return np.random.default_rng(words)


def draw_seed():
    return int.from_bytes(os.urandom(8), "little") % 2**63


def is_grade_cell(cell):
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and meta.get("grade") and not meta.get("solution")


@dataclasses.dataclass
class CheckVerdict:
    function: str
    kind: str
    points: float
    earned: float
    message: str
    mistakes: list


@dataclasses.dataclass
class CellVerdict:
    index: int
    grade_id: str
    function: str
    max_points: float
    checks: list
    problem: str = ""

    @property
    def score(self):
        earned = sum(check.earned for check in self.checks)
        scale = self.max_points / sum(c.points for c in self.checks) if self.checks and sum(c.points for c in self.checks) else 0.0
        return round(min(self.max_points, earned * scale), 6)


@dataclasses.dataclass
class NotebookVerdict:
    seed: int
    sandbox: str
    cells: list
    seconds: float
    notes: list

    @property
    def score(self):
        return sum(cell.score for cell in self.cells)

    @property
    def max_score(self):
        return sum(cell.max_points for cell in self.cells)

    def as_record(self):
        return [dataclasses.asdict(check) for cell in self.cells for check in cell.checks]


def _skip(cell, pattern):
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(pattern) and meta.get("locked") and not meta.get("solution") and re.search(pattern, meta.get("grade_id", "") or "")


MAX_RESULT_BYTES = 64 * 2**20


def _collect(run, probe_id):
    """The Outcome of one probe, from the runner's report and the result file written outside the sandbox."""
    frame = run.probes.get(probe_id)
    if frame is None:
        return Outcome(status="not-run", message=run.fatal)
    status = str(frame.get("status", "malformed"))
    if status != "ok":
        return Outcome(status=status, message=str(frame.get("message", ""))[:300])
    try:
        data = codec.decode(safe_io.read_regular(os.path.join(run.results_dir, f"{probe_id}.bin"), MAX_RESULT_BYTES),
                            max_bytes=MAX_RESULT_BYTES)
    except (codec.CodecError, OSError) as error:
        return Outcome(status="malformed", message=f"its result could not be read ({error})")
    if type(data) is not dict or set(data) != {"status", "value"} or type(data["status"]) is not dict:
        return Outcome(status="malformed", message="its result had an unexpected form")
    status = data["status"]
    if status.get("status") == "ok":
        return Outcome(status="ok", value=data["value"])
    return Outcome(status="error", message=str(status.get("message", ""))[:400], line=str(status.get("line", ""))[:200],
                   error_type=str(status.get("type", "Exception"))[:80])


def judge_notebook(nb, submission_dir, seed, limits=None, skip_pattern=r"^(selfcheck|experiment|explore)-", python=None):
    """Judge one notebook (an nbformat node, modified in place); returns a NotebookVerdict.

    ``python``: the interpreter the sandbox runs (default: this one). Raises
    :class:`launch.InfrastructureError` when the sandbox cannot run the notebook at all.
    """
    limits = limits or launch.Limits()
    notes = []
    student_cells, graded = [], []
    for index, cell in enumerate(nb.cells):
        if is_grade_cell(cell):
            graded.append(index)
        elif cell.get("cell_type") == "code" and not _skip(cell, skip_pattern):
            student_cells.append(index)

    cells, planned = [], []
    for index in graded:
        cell = nb.cells[index]
        meta = cell.metadata.nbgrader
        verdict = CellVerdict(index, meta.get("grade_id", ""), "", float(meta.get("points", 0) or 0), [])
        cells.append(verdict)
        try:
            spec = parse_spec(cell.source)
            if spec is None:
                raise SpecError("no judge(...) declaration in this grade cell")
            verdict.function = spec.function
            case = get_case(spec.function)
            for kind, points in spec.points.items():
                check = case.build(kind, derive_rng(seed, spec.function, kind))
                planned.append((verdict, kind, points, check))
        except (SpecError, KeyError) as error:
            verdict.problem = f"grade cell {verdict.grade_id!r}: {error}"
            notes.append(verdict.problem)
            log.error("%s", verdict.problem)

    root, work, job, home = launch.prepare(submission_dir, limits.max_disk_bytes)
    try:
        probe_ids, probe_timeouts, groups = [], {}, []
        for _, _, _, check in planned:
            groups.append([])
            for probe in check.probes:
                probe_id = f"p{len(probe_ids):03d}"
                probe_dir = os.path.join(job, "probes", probe_id)
                os.makedirs(probe_dir)
                with open(os.path.join(probe_dir, "code.py"), "w", encoding="utf-8") as handle:
                    handle.write(probe.code)
                with open(os.path.join(probe_dir, "inputs.bin"), "wb") as handle:
                    handle.write(codec.encode(probe.inputs))
                probe_ids.append(probe_id)
                groups[-1].append(probe_id)
                if probe.timeout:
                    probe_timeouts[probe_id] = min(float(probe.timeout), limits.probe_timeout * 4)
        job_spec = {
            "cells": [{"source": nb.cells[i].source} for i in student_cells],
            "probes": probe_ids,
            "cell_timeout": limits.cell_timeout,
            "probe_timeout": limits.probe_timeout,
            "probe_timeouts": probe_timeouts,
            "groups": groups,
            "max_output_bytes": limits.max_output_bytes,
            "max_restarts": limits.max_restarts,
        }
        with open(os.path.join(job, "job.json"), "w") as handle:
            json.dump(job_spec, handle)
        run = launch.run(root, limits, python)
        if run.fatal:
            notes.append(f"notebook run stopped early: {run.fatal}")
            if not run.done:
                log.warning("runner ended without its closing report (exit %s): %s", run.returncode, run.runner_stderr[-1500:])
        _copy_cell_outputs(nb, student_cells, run.cells)

        cursor = 0
        for verdict, kind, points, check in planned:
            ids = probe_ids[cursor:cursor + len(check.probes)]
            cursor += len(check.probes)
            outcomes = [_collect(run, probe_id) for probe_id in ids]
            try:
                result = check.evaluate(outcomes)
            except InternalCheckError as error:
                log.error("hidden check %s/%s is broken: %s", verdict.function, kind, error)
                raise
            except Exception as error:  # a malformed student value must not crash the judge
                log.warning("check %s/%s could not judge the returned value: %r", verdict.function, kind, error)
                result = CheckResult(False, f"{verdict.function} returned values of an unexpected form ({type(error).__name__}).")
            verdict.checks.append(CheckVerdict(verdict.function, kind, points, points if result.passed else 0.0,
                                               result.message, list(result.mistakes)))
    finally:
        launch.cleanup(root)
    _pay_properties_with_value(cells)
    _note_dependencies(cells)
    notebook_verdict = NotebookVerdict(seed, run.mode, cells, run.seconds, notes)
    for verdict in cells:
        _write_grade_cell(nb.cells[verdict.index], verdict, notebook_verdict)
    return notebook_verdict


def _note_dependencies(cells):
    """Point a failure at the graded functions it calls that failed their own checks."""
    failed = {cell.function for cell in cells if any(c.earned < c.points for c in cell.checks)}
    for cell in cells:
        if cell.function not in failed:
            continue
        broken = [name for name in get_case(cell.function).depends if name in failed]
        if not broken:
            continue
        note = (f" {cell.function} uses {', '.join(broken)}, which failed {'its' if len(broken) == 1 else 'their'} "
                f"own checks: fix {'it' if len(broken) == 1 else 'them'} first.")
        for check in cell.checks:
            if check.earned < check.points:
                check.message += note


PROPERTY_KINDS = ("no_mutation", "repeat", "state", "restores_input", "view_safe", "uses_rng", "losses")


def _pay_properties_with_value(cells):
    """A property (no mutation, repeat, state, ...) earns its points only with a right value.

    Any well-formed output, zeros included, leaves its inputs alone and repeats itself; what the
    notebook asks for is the value, so the properties are paid only when the cell's first value
    check (value, gradient, statistics, convergence, ...) passed.
    """
    for cell in cells:
        primary = next((check for check in cell.checks if check.kind not in PROPERTY_KINDS), None)
        if primary is None or primary.earned == primary.points:
            continue
        for check in cell.checks:
            if check.kind in PROPERTY_KINDS and check.earned:
                check.earned = 0.0
                check.message = (f"{check.message}; but this is paid only together with a passing "
                                 f"{KIND_LABELS.get(primary.kind, primary.kind)} check")


def _safe_output(output):
    """One of the runner's cell outputs, rebuilt from plain checked fields (text and PNG only), or None."""
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text")
        return nbformat.v4.new_output("stream", name="stderr" if output.get("name") == "stderr" else "stdout",
                                      text=text[:20_000]) if isinstance(text, str) else None
    if kind == "error":
        trace = output.get("traceback")
        trace = [str(t)[:4000] for t in trace[-12:]] if isinstance(trace, list) else []
        return nbformat.v4.new_output("error", ename=str(output.get("ename"))[:200], evalue=str(output.get("evalue"))[:2000],
                                      traceback=trace)
    if kind == "display_data" and isinstance(output.get("data"), dict):
        data = {}
        text, png = output["data"].get("text/plain"), output["data"].get("image/png")
        if isinstance(text, str):
            data["text/plain"] = text[:20_000]
        if isinstance(png, str) and len(png) < 8 * 2**20 and _is_png(png):
            data["image/png"] = png
        return nbformat.v4.new_output("display_data", data=data) if data else None
    return None


def _is_png(text):
    try:
        return base64.b64decode("".join(text.split()), validate=True)[:8] == b"\x89PNG\r\n\x1a\n"
    except (binascii.Error, ValueError):
        return False


def _copy_cell_outputs(nb, student_cells, reports):
    """Put the runner's outputs of each student cell back into the notebook, rebuilt and bounded."""
    for position, index in enumerate(student_cells):
        cell_report = reports.get(position)
        cell = nb.cells[index]
        outputs = cell_report.get("outputs") if isinstance(cell_report, dict) else None
        kept = [_safe_output(o) for o in outputs[:200] if isinstance(o, dict)] if isinstance(outputs, list) else []
        cell.outputs = [o for o in kept if o is not None]
        note = cell_report.get("note") if isinstance(cell_report, dict) else None
        if isinstance(note, str) and note:
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=f"[grader] {note[:200]}\n"))


def format_cell_message(verdict, notebook_verdict):
    lines = []
    title = verdict.function or verdict.grade_id
    lines.append(f"{title}: {verdict.score:g} / {verdict.max_points:g} points")
    if verdict.problem:
        lines.append(f"  ✗ this cell could not be judged: {verdict.problem}. Please tell your instructor.")
    for check in verdict.checks:
        label = KIND_LABELS.get(check.kind, check.kind)
        mark = "✓" if check.earned == check.points else "✗"
        lines.append(f"  {mark} {label} ({check.earned:g} / {check.points:g}): {check.message}")
    lines.append(f"Judged outside your kernel on fresh inputs (run seed {notebook_verdict.seed}).")
    return "\n".join(lines) + "\n"


def _write_grade_cell(cell, verdict, notebook_verdict):
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=format_cell_message(verdict, notebook_verdict)),
        nbformat.v4.new_output("execute_result", data={"text/plain": repr(verdict.score)}, execution_count=None),
    ]

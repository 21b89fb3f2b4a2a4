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
import dataclasses
import json
import logging
import os
import re
import zlib

import nbformat
import numpy as np

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


def _collect(job_dir, probe_id, runner_fatal):
    probe_dir = os.path.join(job_dir, "probes", probe_id)
    outcome_file = os.path.join(probe_dir, "outcome.json")
    if os.path.exists(outcome_file):
        try:
            with open(outcome_file) as handle:
                data = json.load(handle)
            return Outcome(status=str(data.get("status", "crashed")), message=str(data.get("message", ""))[:300])
        except (OSError, ValueError):
            return Outcome(status="malformed", message="the probe's outcome file was unreadable")
    out_dir = os.path.join(probe_dir, "out")
    if not os.path.isdir(out_dir):
        return Outcome(status="not-run", message=runner_fatal)
    try:
        data = codec.load(out_dir)
    except codec.CodecError as error:
        return Outcome(status="malformed", message=f"its result could not be read ({error})")
    if type(data) is not dict or set(data) != {"status", "value"} or type(data["status"]) is not dict:
        return Outcome(status="malformed", message="its result had an unexpected form")
    status = data["status"]
    if status.get("status") == "ok":
        return Outcome(status="ok", value=data["value"])
    return Outcome(status="error", message=str(status.get("message", ""))[:400], line=str(status.get("line", ""))[:200],
                   error_type=str(status.get("type", "Exception"))[:80])


def judge_notebook(nb, submission_dir, seed, limits=None, skip_pattern=r"^(selfcheck|experiment|explore)-"):
    """Judge one notebook (an nbformat node, modified in place); returns a NotebookVerdict."""
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
                codec.save(probe.inputs, os.path.join(probe_dir, "inputs"))
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
        run = launch.run(root, limits)
        runner_report = _read_runner_report(job)
        fatal = run.killed_because or runner_report.get("fatal", "")
        if not runner_report and not run.killed_because:
            fatal = "the grader's runner did not finish"
            log.error("runner failed (exit %s): %s", run.returncode, run.runner_stderr[-1500:])
        if fatal:
            notes.append(f"notebook run stopped early: {fatal}")
        _copy_cell_outputs(nb, student_cells, runner_report)

        cursor = 0
        for verdict, kind, points, check in planned:
            ids = probe_ids[cursor:cursor + len(check.probes)]
            cursor += len(check.probes)
            outcomes = [_collect(job, probe_id, fatal) for probe_id in ids]
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


def _read_runner_report(job):
    path = os.path.join(job, "cells.json")
    try:
        if os.path.getsize(path) > 50 * 2**20:
            return {}
        with open(path) as handle:
            report = json.load(handle)
        return report if isinstance(report, dict) else {}
    except (OSError, ValueError):
        return {}


def _copy_cell_outputs(nb, student_cells, report):
    reports = report.get("cells", []) if isinstance(report.get("cells"), list) else []
    for index, cell_report in zip(student_cells, reports):
        outputs = cell_report.get("outputs", []) if isinstance(cell_report, dict) else []
        cell = nb.cells[index]
        try:
            cell.outputs = [nbformat.from_dict(o) for o in outputs if isinstance(o, dict)]
            if isinstance(cell_report, dict) and cell_report.get("note"):
                cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=f"[grader] {cell_report['note'][:200]}\n"))
        except Exception:
            cell.outputs = []


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

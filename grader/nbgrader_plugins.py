"""nbgrader preprocessors that put the judge into nbgrader's own autograde pipeline.

``course/nbgrader_config.py`` replaces nbgrader's ``Execute`` with :class:`JudgeInSandbox`,
so ``nbgrader autograde`` (and everything built on it) runs student code in the sandbox and
takes every score from the judge, and its ``CheckCellMetadata`` with a faster one that makes
the same checks. Nothing else in nbgrader's pipeline changes.
"""
import logging
import traceback

import jsonschema
from nbgrader import preprocessors
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Integer, Unicode

from . import guard, judge, records
from .sandbox import launch


class JudgeInSandbox(NbGraderPreprocessor):
    """Run the student's cells and the hidden probes in a sandbox; score in this process."""

    seed = Integer(None, allow_none=True, help="Seed for the hidden inputs (default: a fresh one per run).").tag(config=True)
    reuse_recorded_seed = Bool(False, help="Reuse the seed recorded by the previous run of this notebook (a regrade).").tag(config=True)
    cell_timeout = Float(60, help="Seconds one student cell may run.").tag(config=True)
    probe_timeout = Float(20, help="Seconds one probe (one call of a student function) may run.").tag(config=True)
    notebook_timeout = Float(900, help="Seconds the whole notebook may run in the sandbox.").tag(config=True)
    memory_limit_mb = Integer(4096, help="Address-space limit of the sandboxed processes, MiB.").tag(config=True)
    max_processes = Integer(256, help="Process limit inside the sandbox.").tag(config=True)
    max_disk_mb = Integer(1024, help="Disk the sandbox may use, MiB.").tag(config=True)
    sandbox_python = Unicode("", help="The Python interpreter the sandbox runs (default: the grader's own). It needs "
                             "nbformat, nbclient, ipykernel and numpy; nbgrader and this package need not be installed in it.").tag(config=True)
    skip_cells = Unicode(r"^(selfcheck|experiment|explore)-",
                         help="Locked cells whose grade_id matches are not run when grading (self-checks, experiments).").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        try:
            return self._judge(nb, resources)
        except BaseException as error:
            # The judge raises for no student's work (a failure costs only the checks it touched),
            # so this is the grader failing: nbgrader's own error path fails the submission, and
            # whatever this run stored for it is undone first (see grader.guard).
            if isinstance(error, launch.InfrastructureError):
                guard.mark_broken(str(error))
            guard.undo(info["assignment"], info["student"], self.log)
            raise

    def _judge(self, nb, resources):
        if guard.broken_reason():
            raise launch.InfrastructureError(f"not judged: an earlier notebook of this run found the grader broken "
                                             f"({guard.broken_reason()})")
        info = resources["nbgrader"]
        assignment, student, notebook = info["assignment"], info["student"], info["notebook"]
        db_url = info["db_url"]
        seed = self.seed
        if seed is None and self.reuse_recorded_seed:
            seed = records.recorded_seed(db_url, assignment, student, notebook)
            if seed is None:
                self.log.warning("no recorded seed for %s/%s/%s; drawing a new one", assignment, student, notebook)
        if seed is None:
            seed = judge.draw_seed()
        limits = launch.Limits(cell_timeout=self.cell_timeout, probe_timeout=self.probe_timeout,
                               notebook_timeout=self.notebook_timeout, memory_bytes=self.memory_limit_mb * 2**20,
                               max_processes=self.max_processes, max_disk_bytes=self.max_disk_mb * 2**20)
        _route_logs(self.log)
        verdict = judge.judge_notebook(nb, resources["metadata"]["path"], seed, limits, self.skip_cells,
                                       python=self.sandbox_python or None)
        for note in verdict.notes:
            self.log.warning("%s/%s/%s: %s", assignment, student, notebook, note)
        self.log.info("%s/%s/%s judged in %s mode with seed %d: %g / %g (%.1f s)", assignment, student, notebook,
                      verdict.sandbox, seed, verdict.score, verdict.max_score, verdict.seconds)
        nb.metadata["backprop_lab"] = {"seed": str(seed), "sandbox": verdict.sandbox,
                                       "score": verdict.score, "max_score": verdict.max_score}
        records.save(db_url, assignment, student, notebook, verdict)
        return nb, resources


def _route_logs(app_log):
    """Send the judge's and sandbox's log lines through nbgrader's logger, once."""
    for name in ("backprop_lab.judge", "backprop_lab.sandbox"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.parent = app_log


class CheckCellMetadata(preprocessors.CheckCellMetadata):
    """nbgrader's ``CheckCellMetadata`` with its JSON schema checked once, not once per cell.

    nbgrader validates each cell's metadata with ``jsonschema.validate``, which re-checks the
    schema itself every time: 0.15 s of a notebook's grading, twice per notebook. Same checks,
    same errors, same log lines; the validator is built once per process.
    """

    def preprocess(self, nb, resources):
        try:
            _CachedMetadataValidator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg)
        return nb, resources


class _SchemaCheckedOnce(BaseMetadataValidator):
    """The schema step of nbgrader's ``validate_cell``, with a validator built once."""

    _validators = {}

    def validate_cell(self, cell):
        meta = cell.metadata.get("nbgrader")
        if meta is None or meta.get("schema_version", 0) != self.schema_version:
            return super().validate_cell(cell)  # nothing to check, or nbgrader's own version error
        validator = self._validators.get(self.schema_version)
        if validator is None:
            kind = jsonschema.validators.validator_for(self.schema)
            kind.check_schema(self.schema)
            validator = self._validators[self.schema_version] = kind(self.schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(meta))
        if error is not None:
            raise error


class _CachedMetadataValidator(MetadataValidator, _SchemaCheckedOnce):
    """nbgrader's current validator; its ``super().validate_cell`` lands in ``_SchemaCheckedOnce``."""

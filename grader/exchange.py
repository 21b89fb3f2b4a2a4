"""``nbgrader collect`` that copies only folders and regular files out of the exchange.

Stock collect copies each ``inbound/<student>+<assignment>+<time>+<random>`` folder with
``shutil.copytree``, following links, as the instructor: a student whose inbound entry is a
link to the instructor's ``source/<assignment>`` hands in the reference solutions (and gets
full marks, and their feedback shows the solutions); a link inside it to the gradebook copies
the gradebook into ``submitted/``; a link to ``/dev/zero`` fills the disk; a FIFO stops the
whole collect. The student owns that folder and can change it while it is copied, so
:class:`SafeCollect` copies it with ``grader.safe_io.copy_tree_regular`` (through folder
descriptors, no link followed, no special file opened, sizes capped). Links and special files
stay in the exchange and are reported, one line each with the course's problem marker.
``CourseDirectory.ignore``, ``include``, ``max_file_size`` and ``max_dir_size`` apply as in stock
collect, except that what is over ``max_dir_size`` is left out and reported instead of stopping
the whole collect. Enabled in ``course/nbgrader_config.py`` through nbgrader's own plugin point,
``ExchangeFactory.collect``.
"""
import fnmatch
import os

from nbgrader.exchange.default.collect import ExchangeCollect

from . import safe_io
from .intake import PROBLEM_MARK, student_id_problem


def _drop_unwanted(dest, include, max_file_bytes):
    """Remove the copied files stock collect would not have copied; their one-line reasons."""
    lines = []
    for folder, _, files in os.walk(dest):
        for name in sorted(files):
            path = os.path.join(folder, name)
            relative = safe_io.shown(os.path.relpath(path, dest))
            if include and not any(fnmatch.fnmatch(name, glob) for glob in include):
                os.unlink(path)
            elif max_file_bytes and os.lstat(path).st_size > max_file_bytes:
                os.unlink(path)
                lines.append(f"{relative} is over the {max_file_bytes // 1000} kB limit (CourseDirectory.max_file_size); not copied")
    return lines


class SafeCollect(ExchangeCollect):
    """nbgrader's ``ExchangeCollect`` with a copy that never follows a link or opens a special file."""

    def init_src(self):
        """Stock's list of the newest inbound entry per student, without the ids that are no plain names."""
        super().init_src()
        kept = []
        for record in self.src_records:
            problem = student_id_problem(record["username"])
            if problem:
                self.log.error("%s %s in the exchange: %s", PROBLEM_MARK, safe_io.shown(record["filename"]), problem)
            else:
                kept.append(record)
        self.src_records = kept

    def do_copy(self, src, dest, log=None):
        course = self.coursedir
        where = os.path.relpath(dest, course.root)
        try:
            lines = safe_io.copy_tree_regular(src, dest, ignore=course.ignore,
                                              max_bytes=course.max_dir_size * 1000 if course.max_dir_size else safe_io.COPY_MAX_BYTES)
        except safe_io.UnsafeFileError as error:
            self.log.error("%s %s: %s in the exchange %s; nothing collected", PROBLEM_MARK, where,
                           safe_io.shown(os.path.basename(src)), error.strerror)
            return
        lines += _drop_unwanted(dest, course.include, course.max_file_size * 1000 if course.max_file_size else None)
        for line in lines:
            self.log.warning("%s %s/%s", PROBLEM_MARK, where, line)
        if course.groupshared:
            self._share_with_group(dest)

    def _share_with_group(self, dest):
        """As stock collect: folders ug+rwx with setgid, files ug+rw."""
        for folder, _, files in os.walk(dest):
            for path, mode in [(folder, 0o2770)] + [(os.path.join(folder, name), 0o660) for name in files]:
                try:
                    os.chmod(path, (os.lstat(path).st_mode | mode) & 0o2777)
                except PermissionError:
                    self.log.warning("Could not update permissions of %s to make it groupshared", path)

"""Links and special files in a folder nbgrader is about to copy are moved aside first.

nbgrader's converters copy every non-notebook file of their input folder with ``shutil.copy``,
which follows links: a submitted link to ``../../../gradebook.db`` (or through
``/proc/self/cwd/`` to ``source/``) copies the gradebook or the reference solutions into
``autograded/``, then ``generate_feedback`` copies them into the student's ``feedback/``; a link
to ``/dev/zero`` fills the disk and a FIFO fails the submission. nbgrader also opens the
notebooks and ``timestamp.txt`` by path, following links. :func:`set_aside` moves each such
entry (a symbolic link, wherever it points and whether or not its target exists; a hard link,
another name of a file that lives elsewhere; a FIFO, socket or device) out of the folder into
``<course>/quarantine/<the folder's path in the course>/``, with ``os.rename``, which moves the
entry itself and never opens or follows it. Nothing is lost: the quarantine keeps every entry
under its original relative path.

Why move, rather than grade from a clean copy and leave ``submitted/`` as it is: nbgrader offers
no extension point at which its input folder could be swapped or filtered. The converter walks
``submitted/<student>/<assignment>/`` itself (inside ``init_assignment``, after the
``pre_convert_hook``) and reads ``timestamp.txt`` there even before that hook runs, and its
``CourseDirectory.ignore`` matches names, not kinds of file. Changing what nbgrader reads would
mean patching nbgrader, which the stock ``nbgrader autograde`` must not need. What is moved is
never student work nbgrader could grade (a link, a pipe, a device): every other file and
folder stays where it was, byte for byte. The normal route into ``submitted/`` never carries
such entries at all: ``grader.exchange.SafeCollect`` copies only regular files from the
exchange, so this is the second line, for folders that arrived some other way.

The same hook runs before ``generate_feedback`` copies ``autograded/`` into ``feedback/``.
Each entry in a folder's quarantine is reported on every run, one line each, with the course's
problem marker; the text does not depend on when it was moved, so the lines of the worker's
own pass and of nbgrader's hook are the same and are shown once.
"""
import os
import re
import stat

from traitlets.log import get_logger

from .intake import PROBLEM_MARK, Problem
from .safe_io import classify, shown

QUARANTINE = "quarantine"
MAX_LINES = 20   # reported one by one; the rest as one line


class QuarantineError(BaseException):
    """An entry could not be moved aside; the run stops rather than let nbgrader copy it.

    A ``BaseException`` on purpose: nbgrader logs and ignores an ``Exception`` from its
    ``pre_convert_hook`` and then copies the folder anyway.
    """


def _unsafe_entries(folder):
    """``[relative path]`` of every entry under ``folder`` that is neither a real folder nor a regular file with one name.

    Walks real folders only (``lstat``, never through a link), so a linked folder is one entry.
    A hard link counts as unsafe, as everywhere on the host (``grader.safe_io``): it is another
    name of a file that lives elsewhere, the gradebook or a source notebook say.
    """
    found, pending = [], [""]
    while pending:
        relative = pending.pop()
        with os.scandir(os.path.join(folder, relative)) as entries:
            for entry in entries:
                path = os.path.join(relative, entry.name)
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    pending.append(path)
                elif not (stat.S_ISREG(info.st_mode) and info.st_nlink == 1):
                    found.append(path)
    return sorted(found)


def _real_folder(path):
    """Create ``path`` as a folder, or accept it if it is one (not a link to one)."""
    try:
        os.mkdir(path, 0o700)
        return True
    except FileExistsError:
        return stat.S_ISDIR(os.lstat(path).st_mode)


def _quarantine_folder(root, parts):
    """The real folder ``root/quarantine/<parts...>``; a part that exists there as a non-folder gets a ``~N`` sibling."""
    path = os.path.join(root, QUARANTINE)
    if not _real_folder(path):
        raise QuarantineError(f"{path} is not a folder; links and special files cannot be moved aside")
    for part in parts:
        for n in range(1000):
            candidate = os.path.join(path, part if n == 0 else f"{part}~{n}")
            if _real_folder(candidate):
                path = candidate
                break
        else:
            raise QuarantineError(f"no free name for {part} in {path}")
    return path


def _free_name(folder, name):
    for n in range(1000):
        candidate = os.path.join(folder, name if n == 0 else f"{name}~{n}")
        if not os.path.lexists(candidate):
            return candidate
    raise QuarantineError(f"no free name for {name} in {folder}")


def _move(source, folder, name):
    """Move the entry ``source`` to a free name in ``folder``, never opening or following it."""
    target = _free_name(folder, name)
    try:
        os.rename(source, target)
        return
    except OSError as error:
        failure = error
    # Another file system (EXDEV): make the same entry in the quarantine, then remove the original.
    info = os.lstat(source)
    try:
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(source), target)
        else:
            os.mknod(target, info.st_mode, info.st_rdev)
        os.unlink(source)
    except OSError as error:
        raise QuarantineError(f"{source} could not be moved aside ({failure.strerror}; {error.strerror})") from error


def _parts(folder, root):
    relative = os.path.relpath(os.path.abspath(folder), os.path.abspath(root))
    return [part if part != ".." else "_" for part in relative.split(os.sep) if part not in ("", ".")]


def _linked_component(folder):
    """The student folder or the assignment folder of ``folder`` when it is a link, else None.

    The step folder above them (``submitted/``, ...) may be a link the instructor made (a
    mounted share, say); the two below it are made by nbgrader's collect.
    """
    for path in (os.path.dirname(folder), folder):
        if os.path.islink(path):
            return path
    return None


def set_aside(folder, root):
    """Move every link and special file under ``folder`` into the course's quarantine; one :class:`Problem` each.

    ``root`` is the course folder. When the folder itself (or its student folder) is a link,
    that link is moved and nothing is left to grade.
    """
    folder, root = os.path.abspath(folder), os.path.abspath(root)
    linked = _linked_component(folder)
    if linked is not None:
        parts = _parts(linked, root)
        description = classify(linked)
        _move(linked, _quarantine_folder(root, parts[:-1]), parts[-1])
        return [Problem("", f"the folder {shown('/'.join(parts))} is {description}; moved to "
                            f"{QUARANTINE}/{shown('/'.join(parts))}; there is nothing to grade", False)]
    if not os.path.isdir(folder):
        return []
    parts = _parts(folder, root)
    for relative in _unsafe_entries(folder):
        *inside, name = relative.split(os.sep)
        _move(os.path.join(folder, relative), _quarantine_folder(root, parts + inside), name)
    return quarantined(folder, root)


def quarantined(folder, root):
    """One :class:`Problem` for each entry set aside from ``folder`` (now or in an earlier run), at most :data:`MAX_LINES`."""
    parts = _parts(folder, root)
    base = os.path.join(root, QUARANTINE, *parts)
    if not os.path.isdir(base) or os.path.islink(base):
        return []
    problems = []
    entries = _unsafe_entries(base)
    for relative in entries[:MAX_LINES]:
        original = re.sub(r"~\d+(?=/|$)", "", relative.replace(os.sep, "/"))
        where = f"{QUARANTINE}/{'/'.join(parts)}/{relative.replace(os.sep, '/')}"
        consequence = ("the notebook counts as missing" if original.endswith(".ipynb") and "/" not in original
                       else "it is left out of grading and feedback")
        problems.append(Problem(shown(original), f"is {classify(os.path.join(base, relative))}; "
                                                     f"moved to {shown(where)}; {consequence}", True))
    if len(entries) > MAX_LINES:
        problems.append(Problem("", f"{len(entries) - MAX_LINES} more links or special files were moved to "
                                    f"{shown(QUARANTINE + '/' + '/'.join(parts))}", True))
    return problems


def set_aside_hook(assignment, student, notebooks):
    """nbgrader's ``pre_convert_hook`` (``Autograde``, ``GenerateFeedback``): :func:`set_aside` on the input folder.

    nbgrader passes the list of the folder's notebooks (the converter's own list) and runs the
    hook in the course folder (``BaseConverter.start`` changes into ``CourseDirectory.root``).
    A notebook that was a link is removed from that list, so nbgrader counts it as missing.
    """
    if not notebooks:
        return
    try:
        folder = os.path.dirname(os.path.abspath(notebooks[0]))
        log = get_logger()
        for problem in set_aside(folder, os.getcwd()):
            log.warning("%s %s", PROBLEM_MARK, problem.line())
        notebooks[:] = [path for path in notebooks if _is_regular(path)]
    except QuarantineError:
        raise
    except Exception as error:  # nbgrader would log and ignore it, then copy the folder unprotected
        raise QuarantineError(f"setting aside links and special files failed: {type(error).__name__}: {error}") from error


def _is_regular(path):
    try:
        info = os.lstat(path)
        return stat.S_ISREG(info.st_mode) and info.st_nlink == 1
    except OSError:
        return False

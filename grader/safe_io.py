"""Reading and copying files a student controls, on the host: no link followed, regular files only, sizes capped.

Anything in a submission or a job folder may have been planted by student code: a symbolic link
to the gradebook or to ``/dev/zero``, a FIFO that blocks its first reader forever, a socket, a
device, a hard link (another name of a file that lives elsewhere, e.g. in ``source/``), a file
that grows while it is read, an entry swapped for another between a check and its use. So:

- an entry is looked at with ``lstat`` before anything opens it, so a FIFO or a device is never
  opened;
- it is then opened with ``O_NOFOLLOW | O_NONBLOCK`` (a link swapped in fails to open, a FIFO
  swapped in does not block) and ``fstat``-ed: it must still be the same file (device and inode),
  a regular file with a single name;
- at most ``max_bytes + 1`` bytes are ever read, whatever its size says (``/proc`` files say 0);
- a folder is walked through descriptors (each entry opened relative to its open parent folder,
  ``dir_fd``), never by path, so no folder on the way can be swapped for a link mid-walk.

:func:`read_regular` protects the last component of its ``path`` only: the folders above it must
be the host's own, or pass ``dir_fd``, a folder opened with ``O_DIRECTORY | O_NOFOLLOW``.

API: :func:`read_regular` (the bytes of one file), :func:`classify` (what an entry is, in words),
:func:`walk_regular` (a folder's regular files, and one line per entry that is not one),
:func:`copy_tree_regular` (a copy holding only folders and regular files), :class:`UnsafeFileError`.
"""
import errno
import fnmatch
import os
import stat

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_TREE_DEPTH = 32
MAX_TREE_ENTRIES = 10_000
COPY_MAX_BYTES = 256 * 2**20
CHUNK = 2**20


class UnsafeFileError(OSError):
    """A file the host will not read: not a regular file with a single name, or too big.

    ``str()`` is one clear sentence naming the file and what it is.
    """

    def __str__(self):
        return f"{shown(self.filename)} {self.strerror}"


def shown(text, limit=200):
    """``text`` (a name or a link's target) safe for one log line: control characters escaped, cut to ``limit``."""
    text = os.fsdecode(text) if isinstance(text, bytes) else str(text)
    text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(info, name, dir_fd=None):
    """What the entry whose ``lstat`` is ``info`` is, e.g. ``a symbolic link (to ../../gradebook.db)``."""
    mode = info.st_mode
    if stat.S_ISREG(mode):
        if info.st_nlink != 1:
            return f"a hard link (one of {info.st_nlink} names of the same file)"
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        try:
            return f"a symbolic link (to {shown(os.readlink(name, dir_fd=dir_fd))})"
        except OSError:
            return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "character" if stat.S_ISCHR(mode) else "block"
        return f"a {kind} device ({os.major(info.st_rdev)}:{os.minor(info.st_rdev)})"
    return "a special file"


def _single_regular(info):
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def _refusal(info, name, dir_fd):
    """The UnsafeFileError for an entry that is not a regular file with a single name."""
    code = {stat.S_IFLNK: errno.ELOOP, stat.S_IFDIR: errno.EISDIR}.get(stat.S_IFMT(info.st_mode), errno.EINVAL)
    what = _describe(info, name, dir_fd) + ("" if stat.S_ISREG(info.st_mode) else ", not a regular file")
    return UnsafeFileError(code, f"is {what}", name)


def classify(path, *, dir_fd=None):
    """What the entry at ``path`` is, looked at with ``lstat`` (never through a link), in a few words.

    One of: ``a regular file``, ``a folder``, ``a symbolic link (to <target>)``, ``a hard link (one of
    N names of the same file)``, ``a named pipe (FIFO)``, ``a socket``, ``a character device (1:5)``,
    ``a block device (8:0)``, ``a special file``. ``OSError`` if there is no such entry.
    """
    return _describe(os.stat(path, dir_fd=dir_fd, follow_symlinks=False), path, dir_fd)


def _open_checked(name, dir_fd, flags, seen):
    """Open ``name`` (already ``lstat``-ed as ``seen``) and check it is still that entry."""
    try:
        descriptor = os.open(name, flags, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeFileError(error.errno, "was replaced by a link or another kind of file while it was opened",
                                  name) from None
        raise
    opened = os.fstat(descriptor)
    identity = (opened.st_dev, opened.st_ino, stat.S_IFMT(opened.st_mode))
    if identity != (seen.st_dev, seen.st_ino, stat.S_IFMT(seen.st_mode)):
        os.close(descriptor)
        raise UnsafeFileError(errno.EINVAL, "was replaced by another file while it was opened", name)
    return descriptor, opened


def _size(count):
    return f"{count} bytes" if count < 2**20 else f"{count / 2**20:.1f} MiB"


def read_regular(path, max_bytes, *, dir_fd=None):
    """The bytes of the regular file at ``path`` (relative to ``dir_fd`` if given), at most ``max_bytes``.

    Raises :class:`UnsafeFileError` (an ``OSError``) for a symbolic link, folder, FIFO, socket,
    device, hard link or a file over ``max_bytes`` (by its size, or by what is actually read), and
    ``OSError`` if it cannot be read at all. Never blocks on a FIFO and never opens a device.
    """
    seen = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    if not _single_regular(seen):
        raise _refusal(seen, path, dir_fd)
    if seen.st_size > max_bytes:
        raise UnsafeFileError(errno.EFBIG, f"is {_size(seen.st_size)}, over the {_size(max_bytes)} limit", path)
    descriptor, opened = _open_checked(path, dir_fd, READ_FLAGS, seen)
    try:
        if not _single_regular(opened):
            raise _refusal(opened, path, dir_fd)
        chunks, size = [], 0
        want = min(opened.st_size, max_bytes) + 1  # one read holds a file that does not grow
        while size <= max_bytes:
            chunk = os.read(descriptor, want)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            want = min(CHUNK, max_bytes + 1 - size)
        if size > max_bytes:
            raise UnsafeFileError(errno.EFBIG, f"holds more than {_size(max_bytes)}", path)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _matches(name, ignore):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in ignore)


def _walk(folder_fd, ignore, budget, relative="", depth=0):
    """Events for the tree under the open folder ``folder_fd``, entries sorted by name.

    ``("file", relative, name, folder_fd, lstat)``, ``("enter", relative, name, lstat)`` then the
    folder's own events then ``("leave", relative, name, lstat)``, and ``("skip", relative, why)``.
    ``budget`` is a one-item list, the entries that may still be visited.
    """
    names = []
    try:
        with os.scandir(folder_fd) as entries:
            for entry in entries:
                if not _matches(entry.name, ignore):
                    names.append(entry.name)
                if len(names) > budget[0]:
                    break
    except OSError as error:
        yield "skip", relative or ".", f"could not be listed ({error.strerror})"
        return
    for name in sorted(names):
        path = os.path.join(relative, name)
        if budget[0] <= 0:
            yield "skip", relative or ".", (f"holds more entries than the {MAX_TREE_ENTRIES} looked at; "
                                            "the rest are left out")
            budget[0] = -1
            return
        budget[0] -= 1
        try:
            info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        except OSError as error:
            yield "skip", path, f"could not be looked at ({error.strerror})"
            continue
        if _single_regular(info):
            yield "file", path, name, folder_fd, info
        elif not stat.S_ISDIR(info.st_mode):
            yield "skip", path, f"is {_describe(info, name, folder_fd)}"
        elif depth >= MAX_TREE_DEPTH:
            yield "skip", path, f"is a folder nested more than {MAX_TREE_DEPTH} deep"
        else:
            try:
                sub_fd, _ = _open_checked(name, folder_fd, FOLDER_FLAGS, info)
            except UnsafeFileError as error:
                yield "skip", path, error.strerror
                continue
            except OSError as error:
                yield "skip", path, f"could not be opened ({error.strerror})"
                continue
            try:
                yield "enter", path, name, info
                yield from _walk(sub_fd, ignore, budget, path, depth + 1)
                yield "leave", path, name, info
            finally:
                os.close(sub_fd)
        if budget[0] < 0:
            return


def _open_root(folder):
    seen = os.stat(folder, follow_symlinks=False)
    if not stat.S_ISDIR(seen.st_mode):
        raise UnsafeFileError(errno.ENOTDIR, f"is {_describe(seen, folder)}, not a folder", folder)
    return _open_checked(folder, None, FOLDER_FLAGS, seen)[0]


def walk_regular(folder, *, ignore=()):
    """``(files, lines)``: the regular files under ``folder`` and one line per entry that is not one.

    ``files`` are paths relative to ``folder``, found through real folders only (a linked folder
    is one entry, never entered); each line is like ``data.npy is a symbolic link (to
    ../../gradebook.db)``. Names matching a pattern of ``ignore`` (``fnmatch``, e.g. ``"*.pyc"``)
    are left out silently. At most ``MAX_TREE_ENTRIES`` entries, ``MAX_TREE_DEPTH`` folders deep.
    Raises :class:`UnsafeFileError` if ``folder`` itself is a link or not a folder.
    """
    root = _open_root(folder)
    files, lines = [], []
    try:
        for event in _walk(root, tuple(ignore), [MAX_TREE_ENTRIES]):
            if event[0] == "file":
                files.append(event[1])
            elif event[0] == "skip":
                lines.append(f"{shown(event[1])} {event[2]}")
    finally:
        os.close(root)
    return files, lines


def _read_source(source, size, name):
    try:
        return os.read(source, size)
    except OSError as error:
        raise UnsafeFileError(error.errno, f"could not be read ({error.strerror})", name) from None


def _copy_file(name, src_fd, seen, dst_fd, left):
    """Copy one regular file into the open folder ``dst_fd``; returns its size.

    :class:`UnsafeFileError` if the source may not or cannot be copied (nothing is left behind);
    ``OSError`` if the destination cannot be written.
    """
    if seen.st_size > left:
        raise UnsafeFileError(errno.EFBIG, f"is {_size(seen.st_size)}, more than the {_size(left)} left to copy", name)
    try:
        source, opened = _open_checked(name, src_fd, READ_FLAGS, seen)
    except UnsafeFileError:
        raise
    except OSError as error:
        raise UnsafeFileError(error.errno, f"could not be opened ({error.strerror})", name) from None
    try:
        if not _single_regular(opened):
            raise _refusal(opened, name, src_fd)
        mode = 0o755 if opened.st_mode & stat.S_IXUSR else 0o644  # no setuid, setgid, sticky or group write
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dst_fd)
        copied = 0
        try:
            while chunk := _read_source(source, min(CHUNK, left + 1 - copied), name):
                copied += len(chunk)
                if copied > left:
                    raise UnsafeFileError(errno.EFBIG, f"grew past the {_size(left)} left to copy", name)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(target, view):]
            os.fchmod(target, mode)
            os.utime(target, ns=(opened.st_atime_ns, opened.st_mtime_ns))
        except BaseException:
            os.close(target)
            target = None
            os.unlink(name, dir_fd=dst_fd)
            raise
        finally:
            if target is not None:
                os.close(target)
        return copied
    finally:
        os.close(source)


def copy_tree_regular(src, dst, *, ignore=(), max_bytes=COPY_MAX_BYTES):
    """Copy the folders and regular files under ``src`` to ``dst``; returns one line per entry left out.

    Nothing is copied through a link: symbolic links (to files or folders), FIFOs, sockets,
    devices and hard links are left out, each with a line like ``data.npy is a symbolic link (to
    ../../gradebook.db); not copied``, and so is a file that would take the copy past
    ``max_bytes`` in all, a folder nested more than ``MAX_TREE_DEPTH`` deep, and everything after
    the first ``MAX_TREE_ENTRIES`` entries. Names matching a pattern of ``ignore`` (``fnmatch``)
    are left out without a line. The copies belong to the caller, mode 0644 (0755 for a file its
    owner may run, and for folders): no setuid, setgid or sticky bit, owner or group survives;
    modification times do. ``dst`` is created (its parents too); if it exists it must be a real
    folder, without the names being copied. Raises :class:`UnsafeFileError` if ``src`` is a link
    or not a folder, ``OSError`` if ``dst`` cannot be written (nothing is ever overwritten).
    """
    source_root = _open_root(src)
    try:
        os.makedirs(dst, exist_ok=True)
        targets = [_open_root(dst)]
        lines, left = [], max_bytes
        try:
            for event in _walk(source_root, tuple(ignore), [MAX_TREE_ENTRIES]):
                kind, relative = event[0], event[1]
                if kind == "skip":
                    lines.append(f"{shown(relative)} {event[2]}; not copied")
                elif kind == "enter":
                    os.mkdir(event[2], 0o700, dir_fd=targets[-1])
                    targets.append(os.open(event[2], FOLDER_FLAGS, dir_fd=targets[-1]))
                elif kind == "leave":
                    folder = targets.pop()
                    os.fchmod(folder, 0o755)
                    os.close(folder)
                else:
                    try:
                        left -= _copy_file(event[2], event[3], event[4], targets[-1], left)
                    except UnsafeFileError as error:
                        lines.append(f"{shown(relative)} {error.strerror.removesuffix('')}; not copied")
        finally:
            for folder in targets:
                os.close(folder)
    finally:
        os.close(source_root)
    return lines

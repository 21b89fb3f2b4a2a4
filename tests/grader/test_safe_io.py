"""Host-side file handling: links, pipes, sockets, devices and oversize files are refused, never followed or waited on."""
import errno
import os
import socket
import stat
import tempfile
import threading

import pytest

from grader import safe_io
from grader.safe_io import UnsafeFileError, classify, copy_tree_regular, read_regular, walk_regular


def promptly(function, *args, timeout=10, **kwargs):
    """``function(*args)``'s result or exception, failing the test if it blocks (a FIFO would, forever)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    assert outcome, f"{function.__name__} blocked"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def short_tmp():
    """A folder with a short path: a socket's path must fit in 108 bytes."""
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        yield folder


def make_socket(path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    return server


def refusal(path, max_bytes=2**20, **kwargs):
    with pytest.raises(UnsafeFileError) as caught:
        promptly(read_regular, path, max_bytes, **kwargs)
    return caught.value


def test_reads_a_regular_file(tmp_path):
    (tmp_path / "result.bin").write_bytes(b"x" * 1000)
    assert read_regular(tmp_path / "result.bin", 1000) == b"x" * 1000
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert read_regular("result.bin", 1000, dir_fd=folder) == b"x" * 1000
    finally:
        os.close(folder)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "p000.bin")
    error = refusal(tmp_path / "p000.bin")
    assert str(error) == f"{tmp_path / 'p000.bin'} is a named pipe (FIFO), not a regular file"
    assert isinstance(error, OSError) and error.errno == errno.EINVAL


def test_links_are_refused_and_named(tmp_path):
    (tmp_path / "gradebook.db").write_bytes(b"secret")
    os.symlink("/dev/zero", tmp_path / "zero")
    os.symlink(tmp_path / "gradebook.db", tmp_path / "file")
    os.symlink(tmp_path, tmp_path / "folder")
    os.link(tmp_path / "gradebook.db", tmp_path / "hard")
    assert "is a symbolic link (to /dev/zero), not a regular file" in str(refusal(tmp_path / "zero"))
    assert f"is a symbolic link (to {tmp_path / 'gradebook.db'})" in str(refusal(tmp_path / "file"))
    assert refusal(tmp_path / "folder").errno == errno.ELOOP
    assert "is a hard link (one of 2 names of the same file)" in str(refusal(tmp_path / "hard"))


def test_devices_sockets_and_folders_are_refused(tmp_path, short_tmp):
    assert str(refusal("/dev/zero")) == "/dev/zero is a character device (1:5), not a regular file"
    server = make_socket(os.path.join(short_tmp, "s"))
    try:
        assert "is a socket, not a regular file" in str(refusal(os.path.join(short_tmp, "s")))
    finally:
        server.close()
    error = refusal(tmp_path)
    assert "is a folder, not a regular file" in str(error) and error.errno == errno.EISDIR


def test_oversize_files_are_refused_by_size_and_by_what_is_read(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 1001)
    assert read_regular(tmp_path / "big", 1001) == b"x" * 1001
    error = refusal(tmp_path / "big", 1000)
    assert error.errno == errno.EFBIG and "is 1001 bytes, over the 1000 bytes limit" in str(error)
    assert os.stat("/proc/self/status").st_size == 0  # says empty, holds more: only reading tells
    assert "holds more than 10 bytes" in str(refusal("/proc/self/status", 10))


@pytest.mark.parametrize("swap", ["fifo", "link"])
def test_an_entry_swapped_between_lstat_and_open_is_refused(tmp_path, monkeypatch, swap):
    target = tmp_path / "p000.bin"
    target.write_bytes(b"ok")
    real_open = os.open

    def swapping_open(path, flags, *args, **kwargs):
        if os.fspath(path) == os.fspath(target) and os.path.isfile(target):
            os.unlink(target)
            os.mkfifo(target) if swap == "fifo" else os.symlink("/dev/zero", target)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(safe_io.os, "open", swapping_open)
    assert "was replaced" in str(refusal(target))


def test_classify_names_every_kind(tmp_path, short_tmp):
    (tmp_path / "file").write_bytes(b"")
    os.symlink("../../gradebook.db", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    server = make_socket(os.path.join(short_tmp, "s"))
    try:
        kinds = [classify(tmp_path / name) for name in ("file", "link", "fifo")] + [classify(os.path.join(short_tmp, "s"))]
        assert kinds == ["a regular file", "a symbolic link (to ../../gradebook.db)", "a named pipe (FIFO)", "a socket"]
    finally:
        server.close()
    assert classify(tmp_path) == "a folder" and classify("/dev/null") == "a character device (1:3)"
    with pytest.raises(FileNotFoundError):
        classify(tmp_path / "missing")


@pytest.fixture
def hostile_tree(tmp_path, short_tmp):
    """A submission holding every kind of entry; returns (its path, the socket server to close)."""
    src = tmp_path / "submission"
    (src / "data" / "deep").mkdir(parents=True)
    (src / "nb.ipynb").write_text("{}")
    (src / "helper.py").write_text("x = 1\n")
    (src / "data" / "w.npy").write_bytes(b"\x93NUMPY" + bytes(100))
    (src / "data" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "data" / "run.sh", 0o6777)  # setuid, setgid, world-writable
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "helper.pyc").write_bytes(b"")
    (tmp_path / "gradebook.db").write_bytes(b"secret")
    os.symlink("../../gradebook.db", src / "data" / "gradebook.db")
    os.symlink("/dev/zero", src / "zero.npy")
    os.symlink(tmp_path, src / "up")
    os.symlink("/proc/self/cwd", src / "cwd")
    os.mkfifo(src / "pipe")
    os.link(tmp_path / "gradebook.db", src / "hard.db")
    os.symlink("x", src / "odd\nname\x1b[31m")
    server = make_socket(os.path.join(short_tmp, "s"))
    os.rename(os.path.join(short_tmp, "s"), src / "data" / "sock")
    yield src
    server.close()


EXPECTED_LINES = [
    "cwd is a symbolic link (to /proc/self/cwd)", "data/gradebook.db is a symbolic link (to ../../gradebook.db)",
    "data/sock is a socket", "hard.db is a hard link (one of 2 names of the same file)",
    "odd\\nname\\x1b[31m is a symbolic link (to x)", "pipe is a named pipe (FIFO)",
    f"up is a symbolic link (to {{tmp}})", "zero.npy is a symbolic link (to /dev/zero)",
]


def test_walk_lists_regular_files_and_one_line_per_other_entry(hostile_tree):
    files, lines = promptly(walk_regular, hostile_tree, ignore=("__pycache__",))
    assert files == ["data/run.sh", "data/w.npy", "helper.py", "nb.ipynb"]
    assert lines == [line.format(tmp=hostile_tree.parent) for line in EXPECTED_LINES]


def test_copy_holds_only_folders_and_regular_files(hostile_tree, tmp_path):
    dst = tmp_path / "sandbox" / "work"
    lines = promptly(copy_tree_regular, hostile_tree, dst, ignore=("__pycache__", "*.ipynb"))
    assert lines == [line.format(tmp=hostile_tree.parent) + "; not copied" for line in EXPECTED_LINES]
    found = {}
    for folder, dirs, files in os.walk(dst):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            found[os.path.relpath(path, dst)] = stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode)
    assert found == {"data": (stat.S_IFDIR, 0o755), "data/deep": (stat.S_IFDIR, 0o755),
                     "data/run.sh": (stat.S_IFREG, 0o755), "data/w.npy": (stat.S_IFREG, 0o644),
                     "helper.py": (stat.S_IFREG, 0o644)}
    assert (dst / "data" / "w.npy").read_bytes() == (hostile_tree / "data" / "w.npy").read_bytes()
    assert os.stat(dst / "helper.py").st_mtime_ns == os.stat(hostile_tree / "helper.py").st_mtime_ns


def test_copy_keeps_to_its_byte_budget(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name, size in [("a", 600), ("b", 600), ("c", 300)]:
        (src / name).write_bytes(b"x" * size)
    lines = copy_tree_regular(src, tmp_path / "dst", max_bytes=1000)
    assert lines == ["b is 600 bytes, more than the 400 bytes left to copy; not copied"]
    assert sorted(os.listdir(tmp_path / "dst")) == ["a", "c"]


def test_copy_refuses_a_linked_or_missing_source(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(UnsafeFileError, match="is a symbolic link .* not a folder"):
        copy_tree_regular(tmp_path / "link", tmp_path / "dst")
    with pytest.raises(FileNotFoundError):
        copy_tree_regular(tmp_path / "missing", tmp_path / "dst")


def test_copy_never_enters_a_folder_swapped_for_a_link_mid_walk(tmp_path, monkeypatch):
    src, secret = tmp_path / "src", tmp_path / "secret"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "mine.py").write_text("")
    secret.mkdir()
    (secret / "gradebook.db").write_text("secret")
    real_open = os.open

    def swapping_open(path, flags, *args, dir_fd=None, **kwargs):
        if path == "sub" and flags & os.O_DIRECTORY and (src / "sub").is_dir() and not (src / "sub").is_symlink():
            os.rename(src / "sub", tmp_path / "moved")
            os.symlink(secret, src / "sub")
        return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(safe_io.os, "open", swapping_open)
    lines = copy_tree_regular(src, tmp_path / "dst")
    assert lines == ["sub was replaced by a link or another kind of file while it was opened; not copied"]
    assert os.listdir(tmp_path / "dst") == []


def test_copy_and_walk_stop_at_depth_and_entry_limits(tmp_path, monkeypatch):
    deep = tmp_path / "src" / os.path.join(*["d"] * (safe_io.MAX_TREE_DEPTH + 1))
    deep.mkdir(parents=True)
    (deep / "f").write_text("")
    _, lines = walk_regular(tmp_path / "src")
    too_deep = "/".join(["d"] * (safe_io.MAX_TREE_DEPTH + 1))
    assert lines == [f"{too_deep} is a folder nested more than {safe_io.MAX_TREE_DEPTH} deep"]
    many = tmp_path / "many"
    many.mkdir()
    for index in range(10):
        (many / f"f{index}").write_text("")
    monkeypatch.setattr(safe_io, "MAX_TREE_ENTRIES", 4)
    lines = copy_tree_regular(many, tmp_path / "copy")
    assert lines == [". holds more entries than the 4 looked at; the rest are left out; not copied"]
    assert len(os.listdir(tmp_path / "copy")) == 4


def test_copy_never_overwrites_what_is_in_the_destination(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_text("new")
    (tmp_path / "dst").mkdir()
    os.symlink("/etc/passwd", tmp_path / "dst" / "a")
    with pytest.raises(FileExistsError):
        copy_tree_regular(tmp_path / "src", tmp_path / "dst")
    assert os.readlink(tmp_path / "dst" / "a") == "/etc/passwd"

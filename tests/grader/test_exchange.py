"""Stock ``nbgrader collect`` with the course's config copies only folders and regular files from the exchange."""
import os
import stat
import subprocess
import sys

import pytest

from tests import pipeline

pytestmark = pytest.mark.slow
STAMP = "2024-01-01 00:00:00.000000 UTC"


def _collect(course):
    return subprocess.run([sys.executable, "-m", "nbgrader", "collect", "a1"], cwd=course, capture_output=True,
                          text=True, timeout=300)


def test_collect_leaves_links_and_special_files_in_the_exchange(tmp_path):
    course = pipeline.make_course(tmp_path)
    exchange = tmp_path / "exchange"
    (course / "nbgrader_config.py").open("a").write(f"\nc.Exchange.root = {str(exchange)!r}\n")
    (course / "source" / "a1").mkdir(parents=True)
    (course / "source" / "a1" / "a1.ipynb").write_text("the reference solutions")
    inbound = exchange / "backprop-lab" / "inbound"
    ann = inbound / f"ann+a1+{STAMP}+r1"
    (ann / "data").mkdir(parents=True)
    (ann / "a1.ipynb").write_text("{}")
    (ann / "timestamp.txt").write_text(STAMP)
    (ann / "data" / "table.csv").write_text("1,2\n")
    os.symlink(course / "gradebook.db", ann / "notes.db")
    os.symlink("/dev/zero", ann / "data" / "zero")
    os.symlink(course / "source", ann / "src")
    os.mkfifo(ann / "pipe")
    os.symlink(course / "source" / "a1", inbound / f"bob+a1+{STAMP}+r2")  # the whole submission is a link
    script_id = '<img src=x onerror="alert(1)">'   # the student id is the folder's name: shown by formgrader
    (inbound / f"{script_id}+a1+{STAMP}+r3").mkdir()
    (inbound / f"{script_id}+a1+{STAMP}+r3" / "a1.ipynb").write_text("{}")

    result = _collect(course)
    assert result.returncode == 0, result.stdout + result.stderr
    collected = course / "submitted" / "ann" / "a1"
    found = {path.relative_to(collected).as_posix(): stat.S_ISREG(path.lstat().st_mode) for path in collected.rglob("*")}
    assert found == {"a1.ipynb": True, "timestamp.txt": True, "data": False, "data/table.csv": True}
    assert not os.path.lexists(course / "submitted" / "bob" / "a1")
    assert not any(os.path.lexists(p / "a1") for p in (course / "submitted").iterdir() if p.name != "ann")
    assert not (course / "submitted" / script_id).exists()
    log = result.stderr
    for line in (f"submitted/ann/a1/notes.db is a symbolic link (to {course}/gradebook.db); not copied",
                 "submitted/ann/a1/data/zero is a symbolic link (to /dev/zero); not copied",
                 f"submitted/ann/a1/src is a symbolic link (to {course}/source); not copied",
                 "submitted/ann/a1/pipe is a named pipe (FIFO); not copied",
                 f"submitted/bob/a1: bob+a1+{STAMP}+r2 in the exchange is a symbolic link (to {course}/source/a1), not a folder"):
        assert f"[backprop-lab] problem: {line}" in log, log
    assert f"[backprop-lab] problem: {script_id}+a1+{STAMP}+r3 in the exchange: the student id '{script_id}' is not a plain name" in log
    assert os.path.islink(ann / "notes.db") and stat.S_ISFIFO((ann / "pipe").lstat().st_mode)  # the exchange is untouched

"""Links and special files are moved out of a folder before nbgrader copies it, never followed or opened."""
import os
import signal
import stat

import pytest

from grader import quarantine
from grader.intake import inspect_submission, read_problem


@pytest.fixture(autouse=True)
def never_blocks():
    """Opening a FIFO would block for ever: fail instead."""
    def stop(signum, frame):
        raise TimeoutError("blocked")
    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def course(tmp_path):
    (tmp_path / "gradebook.db").write_bytes(b"SQLite format 3\0secret")
    (tmp_path / "source" / "a1").mkdir(parents=True)
    folder = tmp_path / "submitted" / "ann" / "a1"
    (folder / "data" / "deep").mkdir(parents=True)
    (folder / "nb.ipynb").write_text("{}")
    (folder / "data" / "table.csv").write_text("1,2\n")
    os.symlink("../../../gradebook.db", folder / "notes.db")
    os.symlink("/proc/self/cwd/source", folder / "data" / "deep" / "src")
    os.symlink("../../../source/a1", folder / "linked")
    os.symlink("/dev/zero", folder / "zero")
    os.symlink("nowhere", folder / "dangling.ipynb")
    os.mkfifo(folder / "timestamp.txt")
    return tmp_path


def _kinds(root):
    found = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        found[path.relative_to(root).as_posix()] = (f"link {os.readlink(path)}" if stat.S_ISLNK(mode)
                                                     else "fifo" if stat.S_ISFIFO(mode) else "dir" if stat.S_ISDIR(mode) else "file")
    return found


def test_every_link_and_special_file_moves_intact_and_regular_files_stay(course):
    folder = course / "submitted" / "ann" / "a1"
    problems = quarantine.set_aside(folder, course)
    assert _kinds(folder) == {"data": "dir", "data/deep": "dir", "data/table.csv": "file", "nb.ipynb": "file"}
    assert _kinds(course / "quarantine" / "submitted" / "ann" / "a1") == {
        "dangling.ipynb": "link nowhere", "data": "dir", "data/deep": "dir", "data/deep/src": "link /proc/self/cwd/source",
        "linked": "link ../../../source/a1", "notes.db": "link ../../../gradebook.db", "timestamp.txt": "fifo", "zero": "link /dev/zero"}
    lines = [problem.line() for problem in problems]
    assert "notes.db: is a symbolic link (to ../../../gradebook.db); moved to quarantine/submitted/ann/a1/notes.db; " \
           "it is left out of grading and feedback" in lines
    assert "timestamp.txt: is a named pipe (FIFO); moved to quarantine/submitted/ann/a1/timestamp.txt; " \
           "it is left out of grading and feedback" in lines
    assert any(line.startswith("dangling.ipynb: is a symbolic link (to nowhere);") and line.endswith("the notebook counts as missing")
               for line in lines)
    assert len(lines) == 6 and all(problem.graded for problem in problems)
    assert quarantine.set_aside(folder, course) == problems  # reported again on every run, in the same words


def test_a_second_entry_of_the_same_name_does_not_replace_the_first(course):
    folder = course / "submitted" / "ann" / "a1"
    quarantine.set_aside(folder, course)
    os.symlink("/etc/passwd", folder / "notes.db")
    quarantine.set_aside(folder, course)
    moved = course / "quarantine" / "submitted" / "ann" / "a1"
    assert os.readlink(moved / "notes.db") == "../../../gradebook.db" and os.readlink(moved / "notes.db~1") == "/etc/passwd"


def test_a_link_inside_the_quarantine_is_not_followed(course, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (course / "quarantine" / "submitted" / "ann" / "a1").mkdir(parents=True)
    os.symlink(elsewhere, course / "quarantine" / "submitted" / "ann" / "a1" / "data")
    quarantine.set_aside(course / "submitted" / "ann" / "a1", course)
    assert list(elsewhere.iterdir()) == []
    assert os.readlink(course / "quarantine" / "submitted" / "ann" / "a1" / "data~1" / "deep" / "src") == "/proc/self/cwd/source"


def test_a_submission_folder_that_is_a_link_is_moved_whole(course):
    os.symlink("../../source/a1", course / "submitted" / "ann" / "a2")
    problems = quarantine.set_aside(course / "submitted" / "ann" / "a2", course)
    assert [(p.notebook, p.graded) for p in problems] == [("", False)]
    assert "the folder submitted/ann/a2 is a symbolic link (to ../../source/a1)" in problems[0].message
    assert not os.path.lexists(course / "submitted" / "ann" / "a2")
    assert (course / "source" / "a1").is_dir()


def test_the_nbgrader_hook_drops_linked_notebooks_and_stops_when_it_cannot_move(course, monkeypatch):
    folder = course / "submitted" / "ann" / "a1"
    notebooks = [str(folder / "dangling.ipynb"), str(folder / "nb.ipynb")]
    monkeypatch.chdir(course)
    quarantine.set_aside_hook(assignment="a1", student="ann", notebooks=notebooks)
    assert notebooks == [str(folder / "nb.ipynb")]
    os.symlink("/dev/zero", folder / "zero2")
    (course / "quarantine").rename(course / "elsewhere")
    (course / "quarantine").write_text("not a folder")
    with pytest.raises(quarantine.QuarantineError):  # a BaseException: nbgrader cannot swallow it and copy anyway
        quarantine.set_aside_hook(assignment="a1", student="ann", notebooks=notebooks)
    assert not issubclass(quarantine.QuarantineError, Exception)


def test_intake_reads_regular_files_only_and_never_opens_a_fifo(course):
    folder = course / "submitted" / "ann" / "a1"
    assert read_problem(folder / "timestamp.txt") == "is a named pipe (FIFO), not a regular file; it is not read"
    assert read_problem(folder / "notes.db") == "is a symbolic link (to ../../../gradebook.db), not a regular file; it is not read"
    lines = [problem.line() for problem in inspect_submission(folder, {"nb": set(), "dangling": set()})]
    assert "dangling.ipynb: is missing from the submission; it scores 0" in lines
    assert all("notes.db" not in line and "timestamp" not in line for line in lines)


def test_names_are_printed_with_control_characters_escaped(course):
    folder = course / "submitted" / "ann" / "a1"
    os.symlink("\x1b[2Jgone", folder / "evil\nname")
    lines = [problem.line() for problem in quarantine.set_aside(folder, course)]
    assert "evil\\nname: is a symbolic link (to \\x1b[2Jgone); moved to quarantine/submitted/ann/a1/evil\\nname; " \
           "it is left out of grading and feedback" in lines


def test_many_entries_are_reported_in_at_most_twenty_one_lines(course):
    folder = course / "submitted" / "ann" / "a1"
    for n in range(30):
        os.symlink("/dev/null", folder / f"null{n:02d}")
    problems = quarantine.set_aside(folder, course)
    assert len(problems) == quarantine.MAX_LINES + 1
    assert problems[-1].line() == "16 more links or special files were moved to quarantine/submitted/ann/a1"


def test_a_hard_link_is_set_aside_too(course):
    folder = course / "submitted" / "ann" / "a1"
    os.link(course / "gradebook.db", folder / "copy.db")
    lines = [problem.line() for problem in quarantine.set_aside(folder, course)]
    assert "copy.db: is a hard link (one of 2 names of the same file); moved to quarantine/submitted/ann/a1/copy.db; " \
           "it is left out of grading and feedback" in lines
    assert (course / "gradebook.db").read_bytes().startswith(b"SQLite")

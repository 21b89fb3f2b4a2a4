"""README's exchange set-up works end to end: release, a student's fetch and submit, ``backprop-lab collect``."""
import os
import re
import stat
import subprocess
import sys

import pytest

from tests import pipeline
from tests.grader import fixture

pytestmark = pytest.mark.slow
A, NB = fixture.ASSIGNMENT, fixture.NOTEBOOK


def _run(cwd, *args):
    return subprocess.run([*args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != "BACKPROP_LAB_COURSE"})


def test_collect_without_an_exchange_says_how_to_make_one_then_works_as_readme_says(tmp_path):
    readme = (pipeline.REPO / "README.md").read_text()
    assert 'c.Exchange.root = "/srv/nbgrader/exchange"' in readme and "chmod 0777 /srv/nbgrader/exchange" in readme
    course = pipeline.make_course(tmp_path)
    fixture.build(course)
    exchange = tmp_path / "exchange"
    config = course / "nbgrader_config.py"
    config.write_text(config.read_text() + f"\nc.Exchange.root = {str(exchange)!r}\n")

    missing = _run(course, sys.executable, "-m", "grader.instructor.cli", "collect", A)
    assert missing.returncode != 0
    assert f"nbgrader's exchange {exchange} does not exist or is not writable" in missing.stderr, missing.stderr

    exchange.mkdir()
    os.chmod(exchange, 0o777)          # README: sudo mkdir -p ... && sudo chmod 0777 ...
    pipeline.nbgrader(course, "generate_assignment", A, "--force")
    released = pipeline.nbgrader(course, "release_assignment", A)
    assert "Permissions for exchange directory" not in released.stdout + released.stderr  # the mode nbgrader wants
    assert stat.S_IMODE(exchange.stat().st_mode) == 0o777

    home = tmp_path / "student"
    home.mkdir()
    (home / "nbgrader_config.py").write_text(f"c = get_config()\nc.Exchange.root = {str(exchange)!r}\n"
                                             f"c.CourseDirectory.course_id = 'backprop-lab'\n")
    for step in ("fetch_assignment", "submit"):
        result = _run(home, sys.executable, "-m", "nbgrader", step, A)
        assert result.returncode == 0, result.stdout + result.stderr

    collected = _run(course, sys.executable, "-m", "grader.instructor.cli", "collect", A)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert f"backprop-lab: course {course} (the current folder)" in collected.stderr
    submitted = [p for p in (course / "submitted").iterdir() if (p / A / NB).is_file()]
    assert len(submitted) == 1 and re.fullmatch(r"[\w.-]+", submitted[0].name)

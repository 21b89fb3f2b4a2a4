"""``backprop-lab doctor``: a healthy course passes every check; each problem gets its ✗ line and its fix."""
import os
import subprocess
import sys

import pytest

from tests import pipeline

pytestmark = pytest.mark.slow


def _course(tmp_path, *config_lines, exchange=True):
    course = pipeline.make_course(tmp_path, ["01-chain-rule"])
    root = tmp_path / "exchange"
    if exchange:
        root.mkdir()
        root.chmod(0o777)
    with open(course / "nbgrader_config.py", "a") as handle:
        handle.write("\n" + "\n".join([f"c.Exchange.root = {str(root)!r}", *config_lines]) + "\n")
    return course


def _doctor(course):
    env = {key: value for key, value in os.environ.items() if key != "BACKPROP_LAB_DB_URL"}
    return subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(course), "doctor"],
                          capture_output=True, text=True, timeout=600, env=env)


def _line(out, name):
    return next(line for line in out.splitlines() if line[2:].startswith(name))


def test_a_healthy_course_passes_every_check(tmp_path):
    result = _doctor(_course(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    checks = [line for line in result.stdout.splitlines() if line[:1] in "✓✗" and line.strip()]
    assert [line.split()[0] for line in checks] == ["✓"] * 7, result.stdout
    for name in ("course folder", "nbgrader config", "bubblewrap", "sandbox Python", "sandbox kernel", "gradebook", "exchange"):
        assert _line(result.stdout, name)
    assert "a kernel ran a cell in the sandbox (bubblewrap" in result.stdout
    assert "Ready to grade." in result.stdout


def test_a_sandbox_python_without_nbformat_is_named_with_its_fix(tmp_path):
    broken = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(broken)], check=True)
    python = broken / "bin" / "python"
    result = _doctor(_course(tmp_path, f"c.JudgeInSandbox.sandbox_python = {str(python)!r}"))
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    line = _line(out, "sandbox Python")
    assert line.startswith(f"✗ {'sandbox Python':<16}{python} (Python ") and "cannot import nbformat, nbclient" in line, line
    assert f"    fix: {python} -m pip install ipykernel" in out
    assert _line(out, "sandbox kernel").startswith("✗") and "No module named 'nbformat'" in _line(out, "sandbox kernel")
    assert _line(out, "bubblewrap").startswith("✓") and _line(out, "gradebook").startswith("✓")
    assert "2 problem(s) found" in out


def test_an_unreachable_gradebook_hides_its_password_and_a_missing_exchange_says_how_to_make_it(tmp_path):
    course = _course(tmp_path, "c.CourseDirectory.db_url = 'postgresql+psycopg://grader:s3cret@127.0.0.1:9/lab'",
                     exchange=False)
    result = _doctor(course)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "s3cret" not in out
    assert _line(result.stdout, "gradebook").startswith(f"✗ {'gradebook':<16}postgresql+psycopg://grader:***@127.0.0.1:9/lab")
    exchange = tmp_path / "exchange"
    assert _line(result.stdout, "exchange").startswith(f"✗ {'exchange':<16}{exchange} does not exist")
    assert f"    fix: sudo mkdir -p {exchange} && sudo chmod 0777 {exchange}" in result.stdout

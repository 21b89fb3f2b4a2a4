"""The students' environment: every release runs in it, and nothing of solutions/ or grader/ is in it.

A fresh plain venv is built from ``requirements-student.txt`` (pip's cache keeps a rebuild to
about a minute), the six releases are generated in a temporary course by the stock nbgrader, and
each release notebook, its solution cells filled with the reference work, runs top to bottom in
that venv's own kernel, from the release folder, with a clean environment and home: what a student
who did everything sees. Its self-checks must all pass.
"""
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from grader.instructor.cohort import fill_release
from tests import pipeline

pytestmark = pytest.mark.slow
REPO = pipeline.REPO
ASSIGNMENTS = sorted(p.name for p in (REPO / "course" / "source").iterdir() if p.is_dir())
DRIVER = """
import sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
nb.cells.insert(0, nbformat.v4.new_code_cell(
    "import importlib.util, sys\\n"
    "print('KERNEL', sys.prefix)\\n"
    "print('IMPORTABLE', [m for m in ('solutions', 'grader') if importlib.util.find_spec(m)])"))
NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
               resources={"metadata": {"path": "."}}).execute()
nbformat.write(nb, sys.argv[2])
"""


def _host_pip_cache():
    result = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def _student_env(venv, home):
    """A student's shell: the venv first on PATH, a home of their own, nothing of this process's Python setup."""
    return {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "VIRTUAL_ENV": str(venv), "JUPYTER_PLATFORM_DIRS": "1"}


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    root = tmp_path_factory.mktemp("student-env")
    venv, home = root / "venv", root / "home"
    home.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV", "CONDA"))}
    cache = _host_pip_cache()
    if cache:
        env["PIP_CACHE_DIR"] = cache
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                             "-r", str(REPO / "requirements-student.txt")], cwd=root, env=env, capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"root": root, "venv": venv, "home": home, "env": _student_env(venv, home)}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    course = pipeline.make_course(tmp_path_factory.mktemp("releases"), ASSIGNMENTS)
    for assignment in ASSIGNMENTS:
        pipeline.nbgrader(course, "generate_assignment", assignment, "--force")
    return course


def test_solutions_and_hidden_checks_are_neither_importable_nor_present(student):
    venv = student["venv"]
    for module in ("solutions", "grader", "labcheck"):
        found = subprocess.run([str(venv / "bin" / "python"), "-c",
                                f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is not None)"],
                               cwd=student["home"], env=student["env"], capture_output=True, text=True)
        assert found.returncode == 0, f"{module} is importable in the students' environment"
    ours = {hashlib.sha256(path.read_bytes()).hexdigest(): path for folder in ("solutions", "grader")
            for path in (REPO / folder).rglob("*.py") if path.stat().st_size > 200}
    assert len(ours) > 20
    for path in venv.rglob("*"):
        relative = path.relative_to(venv)
        assert not {"solutions", "grader", "labcheck"} & set(relative.parts), relative
        assert not path.name.lower().startswith(("backprop_lab", "backprop-lab", "__editable__")), relative
        if not path.is_file() or path.is_symlink():
            continue
        if path.suffix in (".pth", ".egg-link"):
            assert str(REPO) not in path.read_text(errors="replace"), relative
        if path.suffix == ".py":
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert digest not in ours, f"{relative} is a copy of {ours.get(digest)}"


def test_the_student_files_name_no_part_of_this_repository():
    requirements = [line.strip() for line in (REPO / "requirements-student.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    environment = yaml.safe_load((REPO / "environment-student.yml").read_text())
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    name = lambda requirement: re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].lower()  # noqa: E731
    assert {name(r) for r in requirements} == {name(r) for r in conda} - {"python", "pip"}
    assert not [d for d in environment["dependencies"] if isinstance(d, dict)], "no pip section: nothing installed from here"
    assert "-e" not in " ".join(requirements) and "backprop" not in " ".join(requirements).lower()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_release_runs_top_to_bottom_with_its_self_checks_passing(student, releases, assignment, tmp_path):
    folder = releases / "release" / assignment
    (tmp_path / "driver.py").write_text(DRIVER)
    for name in pipeline.notebook_names(releases, assignment):
        done = fill_release(pipeline.source_notebook(releases, assignment, name), pipeline.release_notebook(releases, assignment, name))
        filled = folder / f"filled-{name}"
        nbformat.write(done, filled)
        executed = tmp_path / name
        result = subprocess.run([str(student["venv"] / "bin" / "python"), str(tmp_path / "driver.py"), str(filled),
                                 str(executed)], cwd=folder, env=student["env"], capture_output=True, text=True, timeout=1800)
        filled.unlink()
        assert result.returncode == 0, result.stderr[-3000:]
        nb = nbformat.read(executed, as_version=4)
        printed = ["".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
                   for cell in nb.cells if cell.cell_type == "code"]
        assert f"KERNEL {student['venv']}" in printed[0], printed[0]
        assert "IMPORTABLE []" in printed[0], printed[0]
        errors = [(cell.get("id"), o.get("ename"), o.get("evalue")) for cell in nb.cells if cell.cell_type == "code"
                  for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert errors == [], errors
        text = "\n".join(printed)
        assert "✗" not in text, [line for line in text.splitlines() if "✗" in line][:5]
        solutions = sum(1 for cell in done.cells if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"))
        assert text.count("✓") >= solutions, (text.count("✓"), solutions)


def test_readme_commands_hide_the_instructor_parts_of_nbgrader_in_a_student_install(student):
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^(jupyter (?:labextension|server extension) disable .+)$", readme, flags=re.M)
    assert len(commands) >= 4, commands
    env = student["env"]
    for command in commands:
        result = subprocess.run(command.split(), cwd=student["home"], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    server = subprocess.run(["jupyter", "server", "extension", "list"], env=env, capture_output=True, text=True, timeout=300)
    colours = re.compile(r"\x1b\[[0-9;]*m")
    listing = colours.sub("", server.stdout + server.stderr)
    lab = subprocess.run(["jupyter", "labextension", "list"], env=env, capture_output=True, text=True, timeout=300)
    labs = colours.sub("", lab.stdout + lab.stderr)
    assert re.search(r"nbgrader\.server_extensions\.formgrader\S*\s+disabled", listing), listing
    assert re.search(r"nbgrader\.server_extensions\.validate_assignment\S*\s+enabled", listing), listing
    assert re.search(r"nbgrader\.server_extensions\.assignment_list\S*\s+enabled", listing), listing
    disabled = labs.split("Disabled extensions:")[-1] if "Disabled extensions:" in labs else ""
    assert "@jupyter/nbgrader:formgrader" in disabled and "@jupyter/nbgrader:create-assignment" in disabled, labs
    assert "@jupyter/nbgrader:validate-assignment" not in disabled, labs


def test_validate_with_the_readme_config_passes_reference_work_and_fails_untouched_work(student, releases, tmp_path):
    assert "c.Validator.validate_all = True" in (REPO / "README.md").read_text()
    env = student["env"]
    config_dir = subprocess.run(["jupyter", "--config-dir"], env=env, capture_output=True, text=True).stdout.strip()
    Path(config_dir).mkdir(parents=True, exist_ok=True)
    (Path(config_dir) / "nbgrader_config.py").write_text("c = get_config()\nc.Validator.validate_all = True\n")
    assignment = "02-forward-pass"
    folder = releases / "release" / assignment
    for name in pipeline.notebook_names(releases, assignment):
        release = pipeline.release_notebook(releases, assignment, name)
        nbformat.write(fill_release(pipeline.source_notebook(releases, assignment, name), release), tmp_path / name)
        nbformat.write(release, tmp_path / f"blank-{name}")
        if not (tmp_path / "labcheck").exists():
            (tmp_path / "labcheck").symlink_to(folder / "labcheck")
        for path, verdict in ((tmp_path / name, "Success! Your notebook passes all the tests."),
                              (tmp_path / f"blank-{name}", "VALIDATION FAILED")):
            result = subprocess.run(["nbgrader", "validate", str(path)], cwd=tmp_path, env=env, capture_output=True,
                                    text=True, timeout=900)
            assert verdict in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]

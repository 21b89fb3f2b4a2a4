"""The distribution's metadata: dependencies agree between pip and conda, the CLI is installed."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _name(requirement):
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_runtime_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"]}
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    conda_names = {_name(r) for r in environment["dependencies"] if isinstance(r, str)} - {"python", "pip"}
    pip_section = [d for d in environment["dependencies"] if isinstance(d, dict)][0]["pip"]
    pip_only = {_name(r) for r in pip_section if not r.startswith("-")}  # packages conda-forge lacks
    assert conda_names | pip_only == pip_names


def test_environment_yml_installs_the_project_itself():
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = [d for d in environment["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert "-e ." in pip_section


def test_console_script_answers_help():
    result = subprocess.run([sys.executable, "-m", "grader.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("release", "autograde", "feedback", "export", "report", "demo"):
        assert command in result.stdout


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "bash .ci/run" in readme.split("\n## ")[0]

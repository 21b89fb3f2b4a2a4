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
    result = subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("release", "autograde", "feedback", "export", "report", "demo"):
        assert command in result.stdout


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "bash .ci/run" in readme.split("\n## ")[0]


def _grader_imports(path):
    """The ``grader`` modules that ``path`` imports, absolute names (relative imports resolved)."""
    import ast
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == "grader"}


def test_imports_point_down_nothing_below_the_instructor_layer_imports_it():
    """STYLE.md: the folders show the layers and imports point one way. ``grader.instructor`` (CLI, demo,
    reports) may import everything else; nothing else may import it."""
    offenders = {str(path.relative_to(REPO)): sorted(n for n in _grader_imports(path) if n.startswith("grader.instructor"))
                 for path in (REPO / "grader").rglob("*.py") if "instructor" not in path.relative_to(REPO).parts}
    assert not {path: names for path, names in offenders.items() if names}
    cli_users = {str(path.relative_to(REPO)) for path in (REPO / "grader" / "instructor").glob("*.py")
                 if path.name != "cli.py" and "grader.instructor.cli" in _grader_imports(path)}
    assert not cli_users, "the CLI's parser is the top: commands, demo and zip_collect must not import it"

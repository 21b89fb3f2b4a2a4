"""Verification of a generated release: nothing secret shipped, stubs fail only as stubs."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "judge(")


def solution_lines(source_nb):
    """Non-trivial lines that occur only inside solution or hidden-test regions of the source.

    A line that also occurs outside them (given code, a docstring, a self-check) is public anyway.
    """
    secret, public, inside = set(), set(), False
    for cell in source_nb.cells:
        for line in cell.source.splitlines():
            stripped = line.strip()
            if "BEGIN SOLUTION" in stripped or "BEGIN HIDDEN TESTS" in stripped:
                inside = True
            elif "END SOLUTION" in stripped or "END HIDDEN TESTS" in stripped:
                inside = False
            elif inside:
                if len(stripped) > 12 and not stripped.startswith("#"):
                    secret.add(stripped)
            else:
                public.add(stripped)
    return secret - public


def declaration_problems(source_nb, name):
    """Grade cells the judge cannot score: every autograded grade cell needs one ``judge(...)`` declaration.

    The hardened grader never runs a grade cell's own code in the student's kernel, so a plain
    nbgrader ``assert`` cell would score 0 for every student, correct work included.
    """
    from .cases import get_case
    from .judge import SpecError, is_grade_cell, parse_spec
    problems = []
    for cell in source_nb.cells:
        if not is_grade_cell(cell):
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", cell.get("id"))
        try:
            spec = parse_spec(cell.source)
        except SpecError as error:
            problems.append(f"{name} grade cell {grade_id!r}: {error}")
            continue
        if spec is None:
            problems.append(f"{name} grade cell {grade_id!r}: no judge(...) declaration; the judge scores only declared "
                            f"checks, so its asserts would never run and every student would score 0 on it. Declare "
                            f"the checks between the hidden-test markers, e.g. judge(\"affine_forward\", value=2) "
                            f"(docs/authoring.md)")
            continue
        try:
            case = get_case(spec.function)
        except KeyError:
            problems.append(f"{name} grade cell {grade_id!r}: judge({spec.function!r}): no hidden checks exist for "
                            f"{spec.function!r} (grader/cases/)")
            continue
        unknown = sorted(set(spec.points) - set(case.kinds))
        if unknown:
            problems.append(f"{name} grade cell {grade_id!r}: judge({spec.function!r}): no check of kind "
                            f"{', '.join(unknown)}; {spec.function} has {', '.join(case.kinds)}")
    return problems


def release_problems(course, assignment, execute=True, timeout=120):
    """A list of human-readable problems; empty when the release is clean."""
    course = Path(course)
    problems = []
    for source_path in sorted((course / "source" / assignment).glob("*.ipynb")):
        release_path = course / "release" / assignment / source_path.name
        if not release_path.exists():
            problems.append(f"{release_path.name}: missing from the release")
            continue
        source_nb = nbformat.read(source_path, as_version=4)
        problems += declaration_problems(source_nb, source_path.name)
        release_nb = nbformat.read(release_path, as_version=4)
        release_text = "\n".join(cell.source for cell in release_nb.cells)
        release_lines = {line.strip() for line in release_text.splitlines()}
        shipped = sorted(solution_lines(source_nb) & release_lines)
        problems += [f"{release_path.name}: solution or hidden line shipped: {line[:80]!r}" for line in shipped[:5]]
        problems += [f"{release_path.name}: marker {m!r} left in the release" for m in MARKERS if m in release_text]
        if execute:
            client = NotebookClient(release_nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                    resources={"metadata": {"path": str(release_path.parent)}})
            client.execute()
            for cell in release_nb.cells:
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error" and output.get("ename") != "NotImplementedError":
                        problems.append(f"{release_path.name} cell {cell.get('id')}: {output.get('ename')}: "
                                        f"{str(output.get('evalue'))[:120]}")
    for secret in ("solutions", "grader"):
        if (course / "release" / assignment / secret).exists():
            problems.append(f"release/{assignment}/{secret}/ must not be shipped")
    return problems

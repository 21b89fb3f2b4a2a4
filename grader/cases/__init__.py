"""Hidden checks, one module per notebook, registered by graded function name.

A grade cell names a function and the check kinds it awards points for; the case registered
under that name turns each kind into a :class:`Check`: probes (small function bodies run in the
student's kernel, inside the sandbox, on inputs drawn here) and an ``evaluate`` that judges
what came back. Everything here runs in the judge's process and never touches student code.
"""
import importlib
import pkgutil

from .base import Case, Check, CheckResult, FunctionCase, InternalCheckError, Outcome, Probe

__all__ = ["Case", "Check", "CheckResult", "FunctionCase", "InternalCheckError", "Outcome", "Probe",
           "all_cases", "get_case", "register"]

_REGISTRY = {}
_LOADED = []


def register(case):
    """Add ``case`` to the registry (a name may be registered once)."""
    if case.function in _REGISTRY and _REGISTRY[case.function] is not case:
        raise ValueError(f"a case for {case.function!r} is already registered")
    _REGISTRY[case.function] = case
    return case


def _load_all():
    """Import every cases module once (a module imported on its own registers only its cases)."""
    if _LOADED:
        return
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
    _LOADED.append(True)


def get_case(function):
    """The case registered for ``function``; KeyError with the known names otherwise."""
    _load_all()
    if function not in _REGISTRY:
        raise KeyError(f"no hidden checks are registered for {function!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[function]


def all_cases():
    _load_all()
    return dict(_REGISTRY)

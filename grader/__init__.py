"""Backprop Lab's grader: checks, diagnostics, the judge, the sandbox and the nbgrader wiring.

The judge decides every score in a process that never imports or runs student code; the
student's notebook runs in a bubblewrap sandbox and hands back plain data only.
"""

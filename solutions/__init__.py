"""Reference solutions for Backprop Lab: one module per notebook.

This package is the single source of truth for the maths. The solution cells of the
course's source notebooks are generated from it, and the grader's judge compares student
output against it. It never ships to students.
"""

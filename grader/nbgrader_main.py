"""nbgrader's own command line, started without a 2-3 s import it never uses.

``python -m grader.nbgrader_main ARGS`` is ``nbgrader ARGS`` (same application, same course
config). The only difference: jsonschema, imported under nbformat, compiles an RFC 3987
Earley grammar at import time whenever the optional ``rfc3987-syntax`` package is present
(Jupyter installs it). That grammar only serves the ``iri`` string formats, which no notebook
or nbgrader schema uses, and building it is most of nbgrader's start-up time.
"""
import sys


def skip_unused_grammar():
    """Make ``import rfc3987_syntax`` fail, so jsonschema leaves out the two ``iri`` formats."""
    sys.modules.setdefault("rfc3987_syntax", None)


def main(argv=None):
    skip_unused_grammar()
    from nbgrader.apps.nbgraderapp import NbGraderApp
    NbGraderApp.launch_instance(argv=argv)


if __name__ == "__main__":
    main()

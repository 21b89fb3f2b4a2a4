"""Running student notebooks in a sandbox.

`runner.py`, `probe_support.py` and `codec.py` are bound read-only into the sandbox and run
there with nothing but the standard library, numpy and the Jupyter client stack, so they
must never import `grader` or `solutions`. `launch.py` is the host side.
"""

"""The instructor's commands that nbgrader lacks: the ``backprop-lab`` CLI, the demo, reports and exports."""

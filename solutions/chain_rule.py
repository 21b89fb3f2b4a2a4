"""Notebook 01, the chain rule: derivatives of scalar expressions, numerically and exactly.

`numerical_derivative` estimates df/dx with a central difference. `Value` is a scalar node of a
computation graph (after Karpathy's micrograd): every operation returns a new `Value` that
remembers its inputs and a closure adding its local derivative times `out.grad` into their
`.grad`; `backward()` runs those closures from the output back to the leaves, so each node's
gradient is complete before it is passed on. Gradients accumulate (`+=`): a node used twice
receives both contributions.
"""

import math


def numerical_derivative(f, x, h=1e-5):
    """Estimate df/dx at x with the central difference (f(x + h) - f(x - h)) / 2h.

    Inputs:
    - f: function of one float returning a float
    - x: float, the point at which to differentiate
    - h: float, half the width of the difference

    Returns:
    - float, the estimate of f'(x); its error shrinks like h**2
    """
    return float((f(x + h) - f(x - h)) / (2 * h))


class Value:
    """A scalar in a computation graph, holding its value and the gradient of the output.

    Attributes:
    - data: float, the value computed by the forward pass
    - grad: float, d(output)/d(this node), filled in by `backward()` on the output
    """

    def __init__(self, data, _children=(), _op=""):
        """Wrap a number; `_children` are the nodes it was computed from, `_op` names how."""
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = tuple(_children)
        self._op = _op

    def __repr__(self):
        """Show the value and its gradient."""
        return f"Value(data={self.data}, grad={self.grad})"

    def __add__(self, other):
        """Return self + other, where other is a Value or a number."""
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        """Return self * other, where other is a Value or a number."""
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent):
        """Return self ** exponent for a number exponent (int or float)."""
        assert isinstance(exponent, (int, float)), "only a number exponent is supported"
        out = Value(self.data**exponent, (self,), f"**{exponent}")

        def _backward():
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def __neg__(self):
        """Return -self."""
        return self * -1

    def __sub__(self, other):
        """Return self - other, where other is a Value or a number."""
        return self + (-other)

    def __truediv__(self, other):
        """Return self / other, where other is a Value or a number."""
        return self * other**-1

    def __radd__(self, other):
        """Return other + self for a number other."""
        return self + other

    def __rsub__(self, other):
        """Return other - self for a number other."""
        return other + (-self)

    def __rmul__(self, other):
        """Return other * self for a number other."""
        return self * other

    def __rtruediv__(self, other):
        """Return other / self for a number other."""
        return other * self**-1

    def exp(self):
        """Return e ** self."""
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self):
        """Return the natural logarithm of self (self.data > 0)."""
        out = Value(math.log(self.data), (self,), "log")

        def _backward():
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self):
        """Return tanh(self)."""
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():
            self.grad += (1 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def sigmoid(self):
        """Return 1 / (1 + e ** -self), computed without overflow for any self.data."""
        # exp of a non-positive number never overflows, so pick the form that needs one.
        e = math.exp(-abs(self.data))
        s = 1 / (1 + e) if self.data >= 0 else e / (1 + e)
        out = Value(s, (self,), "sigmoid")

        def _backward():
            self.grad += out.data * (1 - out.data) * out.grad

        out._backward = _backward
        return out

    def relu(self):
        """Return max(0, self); its derivative at 0 is taken to be 0."""
        out = Value(max(0.0, self.data), (self,), "relu")

        def _backward():
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out

    def backward(self):
        """Fill in `.grad` of every node this one depends on with d(self)/d(node).

        Nodes are visited in reverse topological order, so a node passes its gradient on only
        after every node that uses it has added its share. Gradients accumulate: call
        `backward()` on graphs whose `.grad` are still 0.
        """
        # Iterative depth-first search: a long chain of nodes must not hit the recursion limit.
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            node, inputs_done = stack.pop()
            if inputs_done:
                order.append(node)
            elif node not in visited:
                visited.add(node)
                stack.append((node, True))
                stack.extend((child, False) for child in node._prev)
        self.grad = 1.0
        for node in reversed(order):
            node._backward()

"""Shared fixtures of the reference package's tests."""

import warnings

import pytest


@pytest.fixture
def strict():
    """Turn every warning (overflow, divide by zero, invalid value) into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield

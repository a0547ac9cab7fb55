"""Errors raised while reading or converting workflows."""

from __future__ import annotations


class WorkflowError(ValueError):
    """A workflow that cannot be read or converted; the message names the problem."""


class WorkflowFileError(WorkflowError):
    """A file that holds no readable workflow (bad JSON, a PNG without metadata, an unknown shape)."""

"""The root of conductor's exceptions; subclasses carry the data a caller needs."""

from __future__ import annotations


class ConductorError(Exception):
    """Base class for every error conductor raises on purpose."""

"""Moved to :mod:`kdlib.studies.quick` (the quick study); this name keeps old imports working."""
from kdlib.studies.quick import run_quick  # noqa: F401

__all__ = ["run_quick"]

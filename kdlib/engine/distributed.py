"""Moved to :mod:`kdlib.distributed` (the bottom layer, shared by the engine and the methods)."""
from kdlib.distributed import *  # noqa: F401,F403
from kdlib.distributed import __all__  # noqa: F401

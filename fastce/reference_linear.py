"""The earlier import path of :mod:`fastce.reference.linear`, kept working."""
from fastce.reference.linear import *  # noqa: F401,F403
from fastce.reference.linear import __all__  # noqa: F401

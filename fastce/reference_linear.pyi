# The earlier import path of fastce.reference.linear, re-exported.
from fastce.reference.linear import *  # noqa: F401,F403
from fastce.reference.linear import __all__ as __all__

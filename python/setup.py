"""The wheel's platform tag: with the native extension (``make python-native`` puts mcpvault/_native.abi3.so here)
the wheel is a CPython 3.9+ abi3 wheel for this platform; without it, a pure wheel that runs the component alone.
Everything else is in pyproject.toml."""

import os

from setuptools import setup
from setuptools.dist import Distribution

_NATIVE = os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "mcpvault", "_native.abi3.so"))


class _Distribution(Distribution):
    def has_ext_modules(self) -> bool:
        return _NATIVE


options = {"bdist_wheel": {"py_limited_api": "cp39"}} if _NATIVE else {}
setup(distclass=_Distribution, options=options)

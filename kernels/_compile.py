"""Compile the pure device functions of kernels/device/ for one target.

Device functions call each other by plain name. For each target we rebuild every function with
a shared globals namespace in which those names refer to the target's compiled versions, so one
Python source serves numba.njit (CPU) and numba.cuda.jit(device=True) (GPU / simulator).
"""
from __future__ import annotations

import types
from types import SimpleNamespace

from .device import aperture, beam, fluence, influence, raytrace, sampling, sparse

DEVICE_MODULES = (beam, sampling, raytrace, influence, sparse, fluence, aperture)


def compile_device_functions(jit) -> SimpleNamespace:
    """Return a namespace of every device function compiled with ``jit`` (a decorator)."""
    shared: dict = {}
    functions: dict[str, types.FunctionType] = {}
    for module in DEVICE_MODULES:
        for name, obj in vars(module).items():
            if name.startswith("__"):
                continue
            if isinstance(obj, types.FunctionType) and obj.__module__ == module.__name__:
                if name in functions:
                    raise RuntimeError(f"device function name {name!r} is defined twice")
                functions[name] = obj
            elif name not in shared:
                shared[name] = obj
    shared["__builtins__"] = __builtins__
    for name, fn in functions.items():
        rebuilt = types.FunctionType(fn.__code__, shared, name, fn.__defaults__, fn.__closure__)
        rebuilt.__module__ = fn.__module__
        rebuilt.__qualname__ = fn.__qualname__
        rebuilt.__doc__ = fn.__doc__
        shared[name] = jit(rebuilt)
    return SimpleNamespace(**{name: shared[name] for name in functions})

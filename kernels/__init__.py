"""Kernel sources: physics written once (device/), compiled by cpu.py (numba.njit) and cuda.py (numba.cuda.jit)."""

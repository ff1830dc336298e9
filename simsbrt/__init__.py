"""simsbrt: a planning simulator for dose-escalated spine SBRT with a simultaneous integrated boost.

Importing simsbrt never imports cupy or numba.cuda; GPU modules load only when a CUDA
backend is resolved (see simsbrt.backend).
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("simsbrt")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from simsbrt.errors import SimsbrtError, SpecError  # noqa: E402
from simsbrt.evaluate.radiobiology import bed, eqd2, isoeffective_total_gy  # noqa: E402
from simsbrt.grid import Grid  # noqa: E402

__all__ = ["__version__", "Grid", "SimsbrtError", "SpecError", "bed", "eqd2", "isoeffective_total_gy"]

"""simsbrt.phantom: voxel spine phantoms with the SIB protocol's structures.

Public API: load_spec, parse_spec, PhantomSpec, build_phantom, Phantom, generate_cohort,
STRUCTURE_NAMES. Importing this package imports numpy and scipy only (no GPU modules).
"""
from simsbrt.phantom.cohort import generate_cohort
from simsbrt.phantom.levels import LEVEL_NAMES, LEVELS
from simsbrt.phantom.model import Phantom, build_phantom
from simsbrt.phantom.spec import PhantomSpec, builtin_names, load_spec, parse_spec
from simsbrt.phantom.volumes import STRUCTURE_NAMES

__all__ = ["LEVEL_NAMES", "LEVELS", "Phantom", "PhantomSpec", "STRUCTURE_NAMES", "build_phantom", "builtin_names",
           "generate_cohort", "load_spec", "parse_spec"]

"""The documented range of every numeric command-line option (docs/input-validation.md lists them).

``option("search_steps")`` is an argparse ``type``: it parses the text and refuses a value that is
not finite or outside the range, so the command stops with one line before any work
(``simsbrt: error: plan: argument --search-steps: must be an integer within 0..30, got 1000000``).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from simsbrt.grid import MAX_SPACING_MM, MIN_SPACING_MM


@dataclass(frozen=True)
class Range:
    kind: type            # int or float
    low: float
    high: float
    unit: str = ""
    low_open: bool = False   # low itself excluded
    why: str = ""

    def describe(self) -> str:
        lo = f"> {self.low:g}" if self.low_open else f"{self.low:g}"
        return f"{lo} .. {self.high:g}{' ' + self.unit if self.unit else ''}" if not self.low_open else \
            f"{lo} and <= {self.high:g}{' ' + self.unit if self.unit else ''}"


RANGES = {
    "search_steps": Range(int, 0, 30, why="a bisection halves the dose window each step: 30 steps resolve "
                                          "it to 1e-8 Gy, more only repeats the same plan"),
    "cord_prv_limit_gy": Range(float, 5.0, 60.0, "Gy", why="cord PRV D0.03cc over 5 fractions; published "
                                                           "limits lie between 14 and 35 Gy"),
    "field_mm": Range(float, 5.0, 400.0, "mm", why="a linac's largest field is 40 x 40 cm"),
    "ssd_mm": Range(float, 500.0, 1500.0, "mm"),
    "depth_max_mm": Range(float, 10.0, 500.0, "mm"),
    "tail_threshold_frac": Range(float, 0.0, 0.5),
    "influence_seed": Range(int, 0, 2**32 - 1),
    "row_margin_mm": Range(float, 0.0, 200.0, "mm", why="rows farther than 20 cm from the PTV receive no "
                                                        "dose that matters"),
    "total_gy": Range(float, 0.0, 200.0, "Gy", low_open=True),
    "fractions": Range(int, 1, 100),
    "alpha_beta_gy": Range(float, 0.1, 100.0, "Gy"),
    "spacing_mm": Range(float, MIN_SPACING_MM, MAX_SPACING_MM, "mm", why="what the dose engine supports"),
    "cohort_n": Range(int, 1, 1000),
    "cohort_seed": Range(int, 0, 2**32 - 1),
    "workers": Range(int, 1, 256),
    "cache_gb": Range(float, 0.0, 10000.0, "GiB"),
    "gradient_half_width_mm": Range(float, 5.0, 150.0, "mm"),
    "gap_mm": Range(float, 0.0, 50.0, "mm", why="sweep parameter phantom.gtv_cord_gap_mm"),
}


def check_value(name: str, value):
    """value converted and checked against RANGES[name]; ValueError with the reason otherwise."""
    r = RANGES[name]
    what = "an integer" if r.kind is int else "a number"
    if r.kind is int:
        number = int(value)
    else:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"must be a finite number within {r.describe()}, got {value}")
    if number < r.low or number > r.high or (r.low_open and number == r.low):
        raise ValueError(f"must be {what} within {r.describe()}, got {value}")
    return number


def option(name: str):
    """An argparse ``type`` for the option whose documented range is RANGES[name]."""
    r = RANGES[name]

    def parse(text: str):
        try:
            if r.kind is int:
                value = int(text)
            else:
                value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"needs {'an integer' if r.kind is int else 'a number'}, got {text!r}")
        try:
            return check_value(name, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = name
    return parse

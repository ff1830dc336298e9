"""Exceptions that carry a message a physicist can act on."""


class SimsbrtError(Exception):
    """Base class for every error simsbrt raises on purpose."""


class SpecError(SimsbrtError, ValueError):
    """A specification (TOML, CLI argument) is malformed; the message names the field."""

    def __init__(self, field: str, problem: str, source: str | None = None):
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {problem}")


def nonnegative_number(field: str, value, unit: str = "") -> float:
    """``value`` as a float, or a SpecError naming ``field`` unless it is finite and >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(field, f"must be a number >= 0{unit}, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise SpecError(field, f"must be a finite number >= 0{unit}, got {value}")
    return number


class BackendUnavailableError(SimsbrtError, RuntimeError):
    """An explicitly requested backend cannot run on this machine."""


class SchemaError(SimsbrtError, ValueError):
    """A results file is of an unknown or newer schema, or is incomplete."""

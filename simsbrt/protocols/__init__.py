"""simsbrt.protocols: dose protocols as data (TOML files in this folder) and their loader."""
from simsbrt.protocols.loader import (  # noqa: F401
    KNOWN_STRUCTURES,
    Limit,
    Prescription,
    Protocol,
    Range,
    available_protocols,
    load_protocol,
    parse_protocol,
)

__all__ = ["KNOWN_STRUCTURES", "Limit", "Prescription", "Protocol", "Range",
           "available_protocols", "load_protocol", "parse_protocol"]

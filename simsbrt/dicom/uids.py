"""DICOM UIDs: "2.25." + a 128-bit number (ISO/IEC 9834-8, what pydicom.uid.generate_uid makes
without a prefix), hashed from a key and the role of the object (study, series, frame of reference,
one per CT slice, ...). The export's key is random, so every export is a new set of instances (DICOM:
one UID, one unchanging object), while a given UidFactory is reproducible (tests, and every role asked
twice gets the same UID).
"""
from __future__ import annotations

class UidFactory:
    """``uid(role, index)`` is a fixed 2.25.* UID for each role of one export."""

    def __init__(self, key: str):
        self.key = key
        self._cache: dict[tuple, str] = {}

    def uid(self, role: str, index: int = 0) -> str:
        from pydicom.uid import generate_uid

        k = (role, int(index))
        if k not in self._cache:
            self._cache[k] = str(generate_uid(prefix=None, entropy_srcs=[self.key, role, str(int(index))]))
        return self._cache[k]

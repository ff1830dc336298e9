"""DICOM RT export and import (issue 7): CT, RTSTRUCT, RTDOSE, RTPLAN via pydicom."""

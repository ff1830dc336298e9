"""DICOM RT export and import (issue 7): CT, RTSTRUCT, RTDOSE, RTPLAN via pydicom.

- simsbrt.dicom.export: export_plan(PLAN.h5, out_dir), export_phantom(phantom, out_dir) and the
  per-object builders (ct_datasets, rtstruct_dataset, rtdose_dataset, rtplan_dataset).
- simsbrt.dicom.importer: import_dicom(folder, names=None, spacing_mm=None) -> Phantom.
- simsbrt.dicom.hu: the HU <-> relative electron density table (MATRAD_DEFAULT, CtCalibration).
- simsbrt.dicom.contours: mask slice <-> polygons in patient mm.
- simsbrt.dicom.names: ROI name mapping files (default: simsbrt/dicom/data/names.toml).
Nothing is imported here, so ``import simsbrt`` stays light (pydicom loads on first use).
"""

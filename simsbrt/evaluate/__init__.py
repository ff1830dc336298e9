"""simsbrt.evaluate: DVH metrics, protocol checks, plan-quality indices and radiobiology.

Everything here works on host (numpy) arrays on the dose grid; cupy arrays are copied to the
host. See dvh.py for the D_x / V_x definitions and their interpolation.
"""
from simsbrt.evaluate.dvh import DVH, EmptyStructureError, compute_dvh, compute_dvhs  # noqa: F401
from simsbrt.evaluate.indices import (  # noqa: F401
    ConformityIndices,
    conformity_indices,
    gradient_index,
    homogeneity_index_icru83,
    paddick_conformity_index,
)
from simsbrt.evaluate.metrics import Metric, parse_metric  # noqa: F401
from simsbrt.evaluate.models import (  # noqa: F401
    DoseResponseModel,
    ModelEstimate,
    load_model,
    logistic_tcp,
    myelopathy_risk,
    tumour_control_probability,
)
from simsbrt.evaluate.protocol import (  # noqa: F401
    Feasibility,
    ProtocolEvaluation,
    ProtocolRow,
    assess_feasibility,
    evaluate_dvhs,
    evaluate_protocol,
    format_protocol_table,
    prescription_scale_factor,
    row_status,
)
from simsbrt.evaluate.radiobiology import (  # noqa: F401
    bed,
    biological_dose,
    biological_dvh,
    eqd2,
    isoeffective_total_gy,
    total_gy_for_bed,
)

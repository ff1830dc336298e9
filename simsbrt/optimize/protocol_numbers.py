"""Every number the planner uses, read from the protocol (simsbrt/protocols/*.toml or a user's file).

The optimiser's code holds no clinical dose: the plans (simsbrt.optimize.plans) and the fluence
problem's goals (simsbrt.optimize.problem.PlanGoals) take them from here. What is derived, with the
values it gives for sib_trial in brackets:

- the prescription: structure, metric and dose [PTV_Eval D90% = 30 Gy]; the fractions [5];
- the boost search range (SIB): from the prescription dose (no boost) to the lowest mandatory
  maximum on the GTV, the highest boost any GTV ceiling allows [30-51 Gy; GTV D2% <= 51 Gy];
- the hot-spot aim (the ceiling the optimiser aims target overdoses at): the lowest optimal
  maximum of the targets' rows other than the prescription row, else their lowest mandatory
  maximum [48 Gy: GTV and PTV_Eval D2% optimal <= 48 Gy];
- the hot-spot ceilings: the targets' mandatory maxima [GTV D2% <= 51, PTV_Eval D2% <= 51 Gy];
- the escalation range (uniform_escalated, PTV_Eval D90% = p): from the prescription dose to the
  hot-spot aim [30-48 Gy];
- the organ limits: the mandatory maxima on the cord PRV and the thecal sac [25 and 30 Gy], or the
  PlanSettings overrides (--cord-prv-limit-gy), and the aims below them, limit - organ_margin_gy
  [24 and 29 Gy];
- the optimal window (boost policy optimal_window): every optimal ceiling of the protocol
  (simsbrt.optimize.sib.optimal_ceilings) [GTV D2% <= 48, PTV_Eval D2% <= 48 Gy].
PlanSettings.boost_range_gy / escalation_range_gy override either end of a range (None = derived).

The uniform plans are judged by the protocol's comparator (its ``comparator`` key, e.g. sib_trial ->
uniform) with the organ rows replaced by the protocol's own, so every plan of a comparison is held
to the same organ limits (sib-protocol.md, "The uniform comparator").

Checks (SpecError naming the field): the planner steers PTV_Eval (the prescription structure), the
GTV (the boost), the cord PRV and the thecal sac; a limit on any other structure, a volume metric,
or an organ row without a maximum is refused, since the optimiser could not aim at it.
check_phantom refuses a phantom that lacks a required structure, or that has an organ the protocol
sets no limit on (it would go unprotected), and notes optional structures the phantom lacks.

No module of simsbrt.optimize is imported at module level: problem.py reads its defaults from here.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from simsbrt.errors import SpecError
from simsbrt.protocols.loader import Limit, Protocol, load_protocol

DEFAULT_PROTOCOL = "sib_trial"       # the trial's protocol: the default of every planning command
ORGAN_MARGIN_GY = 1.0                # optimiser safety margin: organ aims = limit - this (a tuning value, the
                                     # verdict is on the evaluated dose against the protocol's own limit)


def _roles():
    """(target, boost, organ structures) of the fluence problem (imported late: problem.py imports us)."""
    from simsbrt.optimize.problem import BOOST, CORD_PRV, TARGET, THECAL_SAC

    return TARGET, BOOST, (CORD_PRV, THECAL_SAC)


def as_protocol(protocol) -> Protocol:
    """A Protocol from a Protocol, a built-in name or a TOML path."""
    return protocol if isinstance(protocol, Protocol) else load_protocol(protocol)


def _max_of(limit: Limit, which: str) -> float | None:
    rng = getattr(limit, which)
    return None if rng is None else rng.max_value


def check_plannable(protocol: Protocol) -> Protocol:
    """Refuse rows the optimiser cannot aim at (SpecError naming the protocol field)."""
    target, boost, organs = _roles()
    where = protocol.origin or protocol.name
    if protocol.prescription.structure != target:
        raise SpecError("prescription.structure", f"the planner prescribes to {target}, got "
                                                  f"{protocol.prescription.structure!r}", where)
    for i, lim in enumerate(protocol.limits):
        field = f"limit[{i}]"
        if lim.structure not in (target, boost, *organs):
            raise SpecError(f"{field}.structure", f"the planner has no objective for {lim.structure!r}: it plans "
                                                  f"{', '.join((target, boost, *organs))}", where)
        if not lim.metric.is_dose:
            raise SpecError(f"{field}.metric", f"the planner steers dose metrics (D...), not {lim.metric.name}", where)
        if lim.structure in organs and _max_of(lim, "mandatory") is None and _max_of(lim, "optimal") is None:
            raise SpecError(field, f"an organ row needs a maximum dose (mandatory max) for the planner, "
                                   f"{lim.structure} {lim.metric.name} has none", where)
    return protocol


def is_boost_protocol(protocol: Protocol) -> bool:
    """True when the protocol sets GTV rows (a SIB protocol)."""
    _, boost, _ = _roles()
    return any(lim.structure == boost for lim in protocol.limits)


def organ_limits_gy(protocol: Protocol) -> dict:
    """{organ: lowest mandatory (else optimal) maximum} of the organs the planner protects."""
    _, _, organs = _roles()
    out: dict = {}
    for lim in protocol.limits:
        if lim.structure in organs:
            value = _max_of(lim, "mandatory")
            value = _max_of(lim, "optimal") if value is None else value
            out[lim.structure] = min(value, out.get(lim.structure, value))
    return out


def _target_maxima(protocol: Protocol, which: str, structures) -> list[float]:
    rx = protocol.prescription
    return [_max_of(lim, which) for lim in protocol.limits
            if lim.structure in structures and _max_of(lim, which) is not None
            and not (lim.structure == rx.structure and lim.metric.name == rx.metric.name)]


@dataclass(frozen=True)
class PlanningNumbers:
    """The numbers a plan is searched and optimised with, all from one protocol (module docstring)."""

    protocol: str
    n_fractions: int
    prescription_structure: str
    prescription_metric: str
    prescription_gy: float
    boost_range_gy: tuple[float, float] | None      # None: not a SIB protocol
    escalation_range_gy: tuple[float, float]
    hot_spot_aim_gy: float
    hot_spot_ceilings_gy: tuple[tuple[str, float], ...]
    optimal_window: tuple[str, ...]
    organ_limits_gy: tuple[tuple[str, float], ...]
    organ_aims_gy: tuple[tuple[str, float], ...]

    def goal_values(self) -> dict:
        """The PlanGoals fields the protocol decides (organs it does not limit keep their defaults)."""
        _, _, (cord, sac) = _roles()
        aims = dict(self.organ_aims_gy)
        values = {"prescription_gy": self.prescription_gy, "hot_spot_aim_gy": self.hot_spot_aim_gy}
        for organ, name in ((cord, "cord_prv_aim_gy"), (sac, "thecal_sac_aim_gy")):
            if organ in aims:
                values[name] = aims[organ]
        return values

    def to_dict(self) -> dict:
        rx = f"{self.prescription_structure} {self.prescription_metric} = {self.prescription_gy:g} Gy"
        return {"protocol": self.protocol, "n_fractions": self.n_fractions, "prescription": rx,
                "boost_range_gy": self.boost_range_gy, "escalation_range_gy": self.escalation_range_gy,
                "hot_spot_aim_gy": self.hot_spot_aim_gy, "hot_spot_ceilings_gy": dict(self.hot_spot_ceilings_gy),
                "optimal_window": list(self.optimal_window), "organ_limits_gy": dict(self.organ_limits_gy),
                "organ_aims_gy": dict(self.organ_aims_gy)}


def _range(derived: tuple[float, float], override, name: str) -> tuple[float, float]:
    lo, hi = (derived[i] if override is None or override[i] is None else float(override[i]) for i in (0, 1))
    if not lo <= hi:
        raise SpecError(name, f"the search range is empty: {lo:g} > {hi:g} Gy (protocol values: "
                              f"{derived[0]:g}-{derived[1]:g} Gy)")
    return lo, hi


def planning_numbers(protocol, organ_margin_gy: float = ORGAN_MARGIN_GY, boost_range_gy=None,
                     escalation_range_gy=None) -> PlanningNumbers:
    """Derive every planning number from the protocol (with the settings' organ overrides already applied,
    see simsbrt.optimize.plans.protocol_for). Ranges: (low | None, high | None) overrides."""
    from simsbrt.optimize.sib import optimal_ceilings

    protocol = check_plannable(as_protocol(protocol))
    target, boost, _ = _roles()
    rx = protocol.prescription
    hot_spot = _hot_spot_aim_gy(protocol)
    mandatory = _target_maxima(protocol, "mandatory", (target, boost))
    boost_range = None
    if is_boost_protocol(protocol):
        tops = _target_maxima(protocol, "mandatory", (boost,)) or mandatory or [hot_spot]
        boost_range = _range((rx.dose_gy, min(tops)), boost_range_gy, "boost_range_gy")
    organs = organ_limits_gy(protocol)
    return PlanningNumbers(
        protocol.name, protocol.n_fractions, rx.structure, rx.metric.name, float(rx.dose_gy), boost_range,
        _range((rx.dose_gy, hot_spot), escalation_range_gy, "escalation_range_gy"), float(hot_spot),
        tuple((f"{lim.structure} {lim.metric.name}", float(lim.mandatory.max_value)) for lim in protocol.limits
              if lim.structure in (target, boost) and _max_of(lim, "mandatory") is not None
              and not (lim.structure == rx.structure and lim.metric.name == rx.metric.name)),
        tuple(c.name for c in optimal_ceilings(protocol)),
        tuple(organs.items()),
        tuple((organ, max(limit - organ_margin_gy, 0.0)) for organ, limit in organs.items()))


def _hot_spot_aim_gy(protocol: Protocol) -> float:
    target, boost, _ = _roles()
    rx = protocol.prescription
    optimal = _target_maxima(protocol, "optimal", (target, boost))
    mandatory = _target_maxima(protocol, "mandatory", (target, boost))
    if not optimal and not mandatory:
        raise SpecError("limit", f"protocol {protocol.name} sets no maximum dose on {target} or {boost} (e.g. D2%): "
                                 "the planner needs a hot-spot ceiling", protocol.origin or protocol.name)
    hot_spot = min(optimal) if optimal else min(mandatory)
    if hot_spot <= rx.dose_gy:
        raise SpecError("limit", f"the hot-spot ceiling {hot_spot:g} Gy is not above the prescription "
                                 f"{rx.dose_gy:g} Gy", protocol.origin or protocol.name)
    return float(hot_spot)


def default_goal_values() -> dict:
    """PlanGoals defaults: the prescription, hot-spot aim and organ aims of the default protocol (sib_trial)
    with the default organ margin (computed without simsbrt.optimize.sib, which imports problem.py)."""
    _, _, (cord, sac) = _roles()
    protocol = check_plannable(load_protocol(DEFAULT_PROTOCOL))
    organs = organ_limits_gy(protocol)
    return {"prescription_gy": float(protocol.prescription.dose_gy), "hot_spot_aim_gy": _hot_spot_aim_gy(protocol),
            "cord_prv_aim_gy": organs[cord] - ORGAN_MARGIN_GY, "thecal_sac_aim_gy": organs[sac] - ORGAN_MARGIN_GY}


# ------------------------------------------------------------------ the protocol of each plan
def comparator_protocol(protocol: Protocol) -> Protocol:
    """The uniform protocol of a SIB protocol (its ``comparator``), with the SIB protocol's organ rows, so
    both plans are held to the same organ limits. A protocol without GTV rows is its own comparator."""
    if not is_boost_protocol(protocol):
        return protocol
    where = protocol.origin or protocol.name
    if not protocol.comparator:
        raise SpecError("protocol.comparator", f"protocol {protocol.name} names no uniform comparator; the uniform "
                                               "plans need one (e.g. comparator = \"uniform\")", where)
    try:
        comp = load_protocol(protocol.comparator)
    except SpecError as exc:
        raise SpecError("protocol.comparator", f"{protocol.comparator!r}: {exc.problem}", where) from None
    if is_boost_protocol(comp):
        raise SpecError("protocol.comparator", f"{comp.name} sets GTV rows; the comparator is a uniform protocol",
                        where)
    if comp.n_fractions != protocol.n_fractions or comp.prescription != protocol.prescription:
        raise SpecError("protocol.comparator",
                        f"{comp.name} prescribes {comp.prescription.dose_gy:g} Gy in {comp.n_fractions} fx, "
                        f"{protocol.name} {protocol.prescription.dose_gy:g} Gy in {protocol.n_fractions} fx: "
                        "they must match", where)
    target, boost, organs = _roles()

    def keep(names, own):
        return tuple(n for n in names if n not in organs) + tuple(n for n in own if n in organs)

    limits = (tuple(lim for lim in comp.limits if lim.structure not in organs)
              + tuple(lim for lim in protocol.limits if lim.structure in organs))
    return replace(comp, limits=limits,
                   required_structures=keep(comp.required_structures, protocol.required_structures),
                   optional_structures=keep(comp.optional_structures, protocol.optional_structures))


def mode_protocol(protocol, mode: str) -> Protocol:
    """The protocol a plan of this mode is planned and judged under (before organ-limit overrides)."""
    protocol = check_plannable(as_protocol(protocol))
    if mode == "sib":
        if not is_boost_protocol(protocol):
            raise SpecError("protocol", f"{protocol.name} sets no GTV rows, so there is no boost to plan; the SIB "
                                        "plan needs a SIB protocol (see `simsbrt protocol list`)",
                            protocol.origin or protocol.name)
        return protocol
    return check_plannable(comparator_protocol(protocol))


# ------------------------------------------------------------------ the phantom against the protocol
def check_phantom(protocol, structures: dict, phantom_name: str = "the phantom") -> tuple[str, ...]:
    """SpecError when the phantom lacks a required structure of the protocol, or has an organ the protocol
    sets no limit on (the planner would not protect it). Returns notes on optional structures it lacks."""
    protocol = as_protocol(protocol)
    _, _, organs = _roles()
    where = protocol.origin or protocol.name

    def present(name):
        mask = structures.get(name)
        return mask is not None and bool(mask.any())

    for name in protocol.required_structures:
        if not present(name):
            raise SpecError("protocol.required_structures",
                            f"{phantom_name} has no {name} voxels; list it under optional_structures if it may "
                            "be absent", where)
    limited = organ_limits_gy(protocol)
    for organ in organs:
        if present(organ) and organ not in limited:
            raise SpecError("limit", f"{phantom_name} has {organ} but protocol {protocol.name} sets no limit on it, so "
                                     "the planner would not protect it: add a maximum-dose [[limit]] for it", where)
    return tuple(f"{name}: not in {phantom_name}; its rows of protocol {protocol.name} are reported, not planned"
                 for name in protocol.optional_structures if not present(name))

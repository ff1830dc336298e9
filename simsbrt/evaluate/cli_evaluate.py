"""CLI commands of the evaluation layer (to be listed in simsbrt.cli.COMMAND_MODULES):

  simsbrt protocol list                       the built-in protocols
  simsbrt protocol show NAME_OR_FILE [--json] a protocol's limits (validates a TOML file)
  simsbrt radiobiology --total-gy D --fractions N --alpha-beta AB [--to-fractions M ...] [--json]
"""
from __future__ import annotations

from simsbrt.evaluate.radiobiology import bed, eqd2, isoeffective_total_gy
from simsbrt.protocols.loader import available_protocols, load_protocol
from simsbrt.ranges import option


def protocol_dict(name_or_path) -> dict:
    return load_protocol(name_or_path).to_dict()


def run_protocol_list(args) -> int:
    rows = []
    for name in available_protocols():
        protocol = load_protocol(name)
        rx = protocol.prescription
        rows.append((name, f"{protocol.n_fractions} fx", f"{rx.structure} {rx.metric.name} = {rx.dose_gy:g} Gy",
                     protocol.description))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(c.ljust(w) for c, w in zip(row, widths)), row[3]]))
    return 0


def run_protocol_show(args) -> int:
    info = protocol_dict(args.protocol)
    if args.json:
        from simsbrt.cli import print_json

        print_json(info)
        return 0
    rx = info["prescription"]
    print(f"{info['name']}: {info['description']}")
    print(f"source: {info['source']}")
    print(f"{info['n_fractions']} fractions; prescription {rx['structure']} {rx['metric']} = {rx['dose_gy']:g} Gy")
    protocol = load_protocol(args.protocol)
    rows = [("structure", "metric", "optimal", "mandatory")]
    rows += [(lim.structure, lim.metric.name, lim.optimal.describe() if lim.optimal else "-",
              lim.mandatory.describe() if lim.mandatory else "-") for lim in protocol.limits]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def radiobiology_dict(total_gy: float, n_fractions: int, alpha_beta_gy: float, to_fractions=()) -> dict:
    return {
        "total_gy": total_gy, "n_fractions": n_fractions, "alpha_beta_gy": alpha_beta_gy,
        "bed_gy": bed(total_gy, n_fractions, alpha_beta_gy),
        "eqd2_gy": eqd2(total_gy, n_fractions, alpha_beta_gy),
        "isoeffective_total_gy": {str(m): isoeffective_total_gy(total_gy, n_fractions, alpha_beta_gy, m)
                                  for m in to_fractions},
    }


def run_radiobiology(args) -> int:
    info = radiobiology_dict(args.total_gy, args.fractions, args.alpha_beta, args.to_fractions or ())
    if args.json:
        from simsbrt.cli import print_json

        print_json(info)
        return 0
    print(f"{args.total_gy:g} Gy / {args.fractions} fx at alpha/beta {args.alpha_beta:g} Gy: "
          f"BED {info['bed_gy']:.2f} Gy, EQD2 {info['eqd2_gy']:.2f} Gy")
    for m, total in info["isoeffective_total_gy"].items():
        print(f"  iso-effective in {m} fx: {total:.2f} Gy ({total / int(m):.2f} Gy per fraction)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("protocol", help="list or show dose protocols (Table 1 limits)")
    psub = p.add_subparsers(dest="protocol_command", metavar="ACTION", required=True)
    pl = psub.add_parser("list", help="built-in protocol names")
    pl.set_defaults(func=run_protocol_list)
    ps = psub.add_parser("show", help="a protocol's prescription and limits (validates a TOML file)")
    ps.add_argument("protocol", help="built-in name (see `simsbrt protocol list`) or a TOML path")
    ps.add_argument("--json", action="store_true", help="print one JSON object")
    ps.set_defaults(func=run_protocol_show)

    r = sub.add_parser("radiobiology", help="BED, EQD2 and iso-effective doses (linear-quadratic)")
    r.add_argument("--total-gy", type=option("total_gy"), required=True, help="total physical dose in Gy")
    r.add_argument("--fractions", type=option("fractions"), required=True, help="number of fractions")
    r.add_argument("--alpha-beta", type=option("alpha_beta_gy"), required=True, help="alpha/beta in Gy")
    r.add_argument("--to-fractions", type=option("fractions"), nargs="*", help="fraction numbers for iso-effective totals")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=run_radiobiology)

"""One self-contained HTML page: inline CSS, PNG figures embedded as base64 data URIs, tables as
HTML, every text escaped. No scripts, no external links or resources: it opens offline."""
from __future__ import annotations

import base64
import html
from pathlib import Path

STATUS_CLASSES = {"optimal": "optimal", "acceptable": "acceptable", "violated": "violated"}

CSS = """
body { font-family: Helvetica, Arial, sans-serif; max-width: 1250px; margin: 1.5em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #444; padding-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #bbb; }
h3 { font-size: 1.05em; margin-top: 1.2em; }
img { max-width: 100%; border: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.optimal { background: #d9f2d9; }
.acceptable { background: #fff2cc; }
.violated { background: #f8cccc; font-weight: bold; }
.look { background: #f4f7fb; border-left: 4px solid #4a78b5; padding: 0.4em 0.8em; }
.small { font-size: 0.85em; color: #555; }
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def png_data_uri(path) -> str:
    data = Path(path).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def paragraphs(texts, css_class: str | None = None) -> str:
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return "".join(f"<p{cls}>{esc(t)}</p>\n" for t in texts)


def figure_section(title: str, png_path, alt: str, what_to_look_at, details=(), extra_html: str = "") -> str:
    """A heading, the embedded image, a 'what to look at' box for residents, then details."""
    look = "".join(f"<li>{esc(t)}</li>" for t in what_to_look_at)
    return (f"<h2>{esc(title)}</h2>\n<img src=\"{png_data_uri(png_path)}\" alt=\"{esc(alt)}\">\n"
            f"<div class=\"look\"><b>What to look at</b><ul>{look}</ul></div>\n"
            + paragraphs(details) + extra_html)


def table(header, rows, row_classes=None, numeric_columns=()) -> str:
    """An HTML table; cells are escaped; row_classes gives a CSS class per row (or None)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        cls = (row_classes or [None] * len(rows))[index]
        cells = "".join(f"<td class=\"num\">{esc(c)}</td>" if col in numeric_columns else f"<td>{esc(c)}</td>"
                        for col, c in enumerate(row))
        body.append(f"<tr class=\"{esc(cls)}\">{cells}</tr>" if cls else f"<tr>{cells}</tr>")
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(body) + "\n</table>\n"


def protocol_table(evaluation) -> str:
    """The protocol evaluation (Table 1 layout) with a coloured status per row."""
    rows, classes = [], []
    for r in evaluation.rows:
        value = "-" if r.value is None else f"{r.value:.2f} {r.unit}"
        rows.append((r.structure, r.metric, value, r.optimal.describe() if r.optimal else "-",
                     r.mandatory.describe() if r.mandatory else "-", r.status))
        classes.append(STATUS_CLASSES.get(r.status))
    verdict = "every mandatory limit met" if evaluation.feasible else \
        "NOT feasible: " + "; ".join(evaluation.violated_limits)
    return (table(("structure", "metric", "value", "optimal range", "mandatory range", "status"), rows, classes,
                  numeric_columns=(2,))
            + paragraphs([f"protocol {evaluation.protocol_name}, {evaluation.n_fractions} fractions: {verdict}"],
                         "small"))


def comparison_table(table_obj) -> str:
    """The side-by-side comparison table of simsbrt.report.compare (values with unit and status)."""
    from simsbrt.report.compare import format_cell

    rows, classes = [], []
    for r in table_obj.rows:
        cells = [format_cell(r.values.get(p), r.unit, r.status.get(p)) for p in table_obj.plans]
        worst = "violated" if any((r.status.get(p) or "").endswith("violated") for p in table_obj.plans) else None
        rows.append((r.label, r.unit, *cells))
        classes.append(worst)
    return (table(("metric", "unit", *table_obj.plans), rows, classes, numeric_columns=tuple(range(2, 2 + len(
        table_obj.plans)))) + paragraphs([f"note: {n}" for n in table_obj.notes], "small"))


def page(title: str, body_html: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n"
            f"{body_html}\n</body>\n</html>\n")

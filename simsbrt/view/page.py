"""The viewer page: one self-contained HTML file (inline CSS, JS and data; no network).

The script (viewer.js, next to this module) reads the embedded JSON document of view.data. Its
state can also be set from the URL fragment, so a page can be opened at a given view and a browser
test can drive it like a user (the fragment's slice values go through the sliders' own input
events, the cursor through a mouse event on the canvas):
  #axial=K&coronal=J&sagittal=I   slice indices (0-based)      #cursor=I,J,K   hover that voxel
  #display=single|side|diff       #a=0&b=1 plans by index      #only=axial     one view, no controls
  #structures=GTV,SpinalCord      outline only these (the checkboxes' own change events)   #zoom=2  px/mm
  #isodose=15,25,30               isodose levels in Gy (the levels box's change event)
After every drawing the page writes its state (slices, cursor, dose read-out) as JSON into
<pre id="view-state">, which `chromium --headless --dump-dom` prints.
"""
from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path

from simsbrt.io.atomic import write_text_atomic
from simsbrt.view.data import load_view_file, view_document


def _asset(name: str) -> str:
    return resources.files("simsbrt.view").joinpath(name).read_text(encoding="utf-8")


def render_page(doc: dict, title: str) -> str:
    data = json.dumps(doc, separators=(",", ":")).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>\n<style>\n{_asset('viewer.css')}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        "<div id=\"app\"><p id=\"loading\">loading the dose data...</p></div>\n"
        "<pre id=\"view-state\" hidden></pre>\n"
        f"<script id=\"view-data\" type=\"application/json\">{data}</script>\n"
        f"<script>\n{_asset('viewer.js')}</script>\n</body></html>\n"
    )


def write_view(paths, out_path, isodose_gy=None) -> tuple[Path, dict]:
    """Read the files, build the page and write it atomically; returns (path, document)."""
    files = [load_view_file(p) for p in paths]
    doc = view_document(files, isodose_gy)
    title = "simsbrt view: " + ", ".join(p["label"] for p in doc["plans"])
    target = Path(out_path)
    write_text_atomic(target, render_page(doc, title))
    return target, doc

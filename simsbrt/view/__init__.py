"""The plan viewer: one self-contained HTML page to browse plans' 3-D dose (``simsbrt view``)."""
from simsbrt.view.data import ViewFile, load_view_file, view_document
from simsbrt.view.page import render_page, write_view

__all__ = ["ViewFile", "load_view_file", "render_page", "view_document", "write_view"]

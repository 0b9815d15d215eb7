"""The one page path of every caller (``document.py``), the stages it reaches through a transport
(``stages.py``), the steps a page takes (``pages.py``) and how a step is tried again (``retries.py``)."""

from serve_app.pipeline.document import (DocumentPipeline, OpenedDocument, ParsedDocument, data_info,
                                         document_status, select_pages)
from serve_app.pipeline.pages import layout_input, recognize_with_retries
from serve_app.pipeline.retries import Retries
from serve_app.pipeline.stages import LocalStages, ServeStages, Stages

__all__ = ["DocumentPipeline", "OpenedDocument", "ParsedDocument", "data_info", "document_status", "select_pages",
           "layout_input", "recognize_with_retries", "Retries", "LocalStages", "ServeStages", "Stages"]

"""Page and document results → ``prunedResult`` JSON, Markdown, images (no model, no Ray).

Example::

    from serve_app.assemble import assemble_document, page_markdown, pruned_result
    md = page_markdown(page, options)      # options: a ParseOptions (None: the official defaults)
    js = pruned_result(page, options)
    texts = assemble_document(pages, options)   # a document: restructured when the options say so
"""

from serve_app.assemble.document import PageText, assemble_document
from serve_app.assemble.markdown import page_markdown
from serve_app.assemble.pages import page_from_pruned, restructure_pages
from serve_app.assemble.pruned import pruned_result
from serve_app.assemble.visualize import visualize

__all__ = ["page_markdown", "pruned_result", "restructure_pages", "page_from_pruned", "visualize",
           "concatenate_markdown", "assemble_document", "PageText"]


def concatenate_markdown(texts: list[str]) -> str:
    """PaddleX ``concatenate_markdown_pages``: every page's Markdown after a blank line."""
    return "".join("\n\n" + t for t in texts)

"""Page and document results → ``prunedResult`` JSON, Markdown, images (no model, no Ray).

Example::

    from serve_app.assemble import page_markdown, pruned_result
    md = page_markdown(page, pretty=True)
    js = pruned_result(page)
"""

from serve_app.assemble.markdown import page_markdown
from serve_app.assemble.pages import page_from_pruned, restructure_pages
from serve_app.assemble.pruned import pruned_result
from serve_app.assemble.visualize import visualize

__all__ = ["page_markdown", "pruned_result", "restructure_pages", "page_from_pruned", "visualize",
           "concatenate_markdown"]


def concatenate_markdown(texts: list[str]) -> str:
    """PaddleX ``concatenate_markdown_pages``: every page's Markdown after a blank line."""
    return "".join("\n\n" + t for t in texts)

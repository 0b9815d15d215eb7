"""What travels between the bulk pipeline's steps: typed values, and the one codec that turns them
into Ray Data rows (``{"source", "item"}``, the item pickled) and back at the dataset boundary."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from deployments.datamodel import LayoutBox, PageError, PageImage, PageResult
from serve_app.assemble import PageText


@dataclass(slots=True)
class DocumentTask:
    """One document of the corpus: its source, content hash and how many pages it sends."""

    source: str
    doc_id: str = ""
    started: float = 0.0
    pages: int = 0


@dataclass(slots=True)
class PageTask:
    """A page on its way: rendered (``page.error`` set when it could not be), then given boxes,
    then a result (without image crops)."""

    doc: DocumentTask
    page: PageImage
    boxes: Optional[list[LayoutBox]] = None
    result: Optional[PageResult] = None


@dataclass(slots=True)
class DocumentDone:
    """A document that leaves the pipeline whole: failed before its pages (``error``), skipped as
    already written (``skipped``), or parsed by a Serve application (``texts``)."""

    doc: DocumentTask
    error: Optional[PageError] = None
    skipped: bool = False
    texts: list[PageText] = field(default_factory=list)


Item = Union[PageTask, DocumentDone]


def to_row(item: Item) -> dict:
    return {"source": item.doc.source, "item": pickle.dumps(item, protocol=5)}


def from_row(row: dict) -> Item:
    return pickle.loads(row["item"])


def decode(batch: dict[str, np.ndarray]) -> list[Item]:
    """A ``map_batches`` batch (columns) → items."""
    return [from_row({"item": data}) for data in batch["item"]]


def encode(items: list[Item]) -> dict[str, list]:
    """Items → a ``map_batches`` batch (columns of the rows ``to_row`` makes)."""
    rows = [to_row(item) for item in items]
    return {"source": [r["source"] for r in rows], "item": [r["item"] for r in rows]}

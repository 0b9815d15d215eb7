"""How the pipeline reaches the three stages: the ``Stages`` protocol and its transports.

- :class:`ServeStages`: Serve deployment handles (the blocking call, streamed pages, jobs). The
  document is stored once in Ray's object store for every render call; each page is stored once,
  by the renderer, as it is rendered, and goes on to layout and recognition by the reference its
  render call returned: the caller never copies a page's pixels.
- :class:`LocalStages`: the stage objects in this process (the command line, benchmarks, tests);
  a page travels as itself.
- Ray Data batches (bulk jobs, ``serve_app/bulk/``) call the same stage objects inside Ray Data's
  actors, a batch at a time, with the pipeline's own page steps (``pages.py``).

A stage's own failure comes back as data (a failed page, a ``PageError`` instead of boxes); what a
transport raises (a lost replica, a full queue) is the pipeline's to classify and retry.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Protocol, Sequence, Union

from deployments.datamodel import LayoutBox, PageError, PageImage, PageResult
from deployments.layout.options import LayoutOptions
from deployments.recognizer.recognizer import PageRequest, TextLayerMode
from deployments.renderer import DocumentInfo, InputError

Boxes = Union[list[LayoutBox], PageError]


class Stages(Protocol):
    def store(self, data: bytes) -> Any:
        """The document as the render calls read it."""

    async def inspect(self, doc: Any, kind: str) -> DocumentInfo:
        """Kind, page count and page sizes; the document's own problem raises :class:`InputError`."""

    def render(self, doc: Any, doc_id: str, kind: str, pages: Sequence[int], page_count: int, orient: bool,
               text_layer: bool) -> AsyncIterator[tuple[PageImage, Any]]:
        """Each of ``pages`` once, in order, as it is rendered, with how the next stages find it."""

    async def detect(self, page: Any, options: LayoutOptions) -> Boxes:
        """The page's layout boxes, or its layout failure."""

    async def recognize(self, page: Any, boxes: list[LayoutBox], request: PageRequest) -> PageResult:
        """The page read (a failed page comes back as data)."""

    async def needs_text_layer(self, mode: TextLayerMode) -> bool:
        """Whether pages must carry their PDF's words for the recognizer."""


class ServeStages:
    """The stages behind Serve deployment handles (``deployments/serve.py``'s classes)."""

    def __init__(self, renderer, layout, recognizer):
        self.renderer, self.layout, self.recognizer = renderer, layout, recognizer

    def store(self, data: bytes) -> Any:
        import ray

        return ray.put(data)

    async def inspect(self, doc: Any, kind: str) -> DocumentInfo:
        info = await self.renderer.inspect.remote(doc, kind)
        if isinstance(info, InputError):  # returned, not raised, so that it arrives as itself
            raise info
        return info

    async def render(self, doc, doc_id, kind, pages, page_count, orient, text_layer):
        call = self.renderer.options(stream=True).render.remote(doc, doc_id, kind, list(pages), page_count, orient,
                                                               text_layer)
        async for ref in await call._to_object_ref_gen():
            yield await ref, ref

    async def detect(self, page: Any, options: LayoutOptions) -> Boxes:
        return await self.layout.detect.remote(page, options)

    async def recognize(self, page: Any, boxes: list[LayoutBox], request: PageRequest) -> PageResult:
        return await self.recognizer.recognize.remote(page, boxes, request)

    async def needs_text_layer(self, mode: TextLayerMode) -> bool:
        return bool(await self.recognizer.needs_text_layer.remote(mode))


class LocalStages:
    """The stage objects themselves, in this process: a ``Renderer``, a ``LayoutDetector`` and a
    started ``Recognizer``. CPU work runs off the event loop."""

    def __init__(self, renderer, layout, recognizer):
        self.renderer, self.layout, self.recognizer = renderer, layout, recognizer

    @classmethod
    async def start(cls, config) -> "LocalStages":
        """The stages of an ``AppConfig``, built and started in this process."""
        from deployments.layout.detector import LayoutDetector
        from deployments.recognizer.recognizer import Recognizer
        from deployments.renderer import Renderer

        recognizer = Recognizer(config.recognizer_config())
        await recognizer.start()
        return cls(Renderer(config.renderer), LayoutDetector(config.layout), recognizer)

    def store(self, data: bytes) -> Any:
        return data

    async def inspect(self, doc: Any, kind: str) -> DocumentInfo:
        return await asyncio.to_thread(self.renderer.inspect, doc, kind)

    async def render(self, doc, doc_id, kind, pages, page_count, orient, text_layer):
        rendered = self.renderer.render_pages(doc, doc_id, kind, list(pages), page_count, orient, text_layer)
        try:
            while (page := await asyncio.to_thread(next, rendered, None)) is not None:
                yield page, page
        finally:
            rendered.close()

    async def detect(self, page: Any, options: LayoutOptions) -> Boxes:
        return (await asyncio.to_thread(self.layout.detect_pages, [page], [options]))[0]

    async def recognize(self, page: Any, boxes: list[LayoutBox], request: PageRequest) -> PageResult:
        return await self.recognizer.recognize(page, boxes, request)

    async def needs_text_layer(self, mode: TextLayerMode) -> bool:
        return self.recognizer.needs_text_layer(mode)

    async def close(self) -> None:
        await self.recognizer.shutdown()

"""The Ray Serve deployments of the three stages: plain classes (no Serve decorators) that
``serve_app/app.py`` turns into deployments with each stage's ``get_deployment_options``. A stage's
own failure, and the caller's input error, come back as data, not exceptions; the pipeline
(``serve_app/pipeline``) reaches them through ``ServeStages``."""

from __future__ import annotations

import asyncio
from typing import Iterator, Optional, Sequence, Union

from deployments.datamodel import LayoutBox, PageError, PageImage, PageResult
from deployments.layout.config import LayoutConfig
from deployments.layout.detector import LayoutDetector
from deployments.layout.options import LayoutOptions
from deployments.recognizer.config import RecognizerConfig
from deployments.recognizer.recognizer import PageRequest, Recognizer, TextLayerMode
from deployments.renderer import DocumentInfo, InputError, Renderer, RendererConfig

Boxes = Union[list[LayoutBox], PageError]


class RenderStage:
    """CPU replicas: document inspection and page rendering."""

    def __init__(self, config: RendererConfig):
        self.renderer = Renderer(config)

    def inspect(self, data: bytes, kind: str) -> DocumentInfo | InputError:
        """The caller's input error is returned (and raised by the caller), not raised here, so
        it arrives as itself rather than wrapped in Ray's task error."""
        try:
            return self.renderer.inspect(data, kind)
        except InputError as exc:
            return exc

    def render(self, data: bytes, doc_id: str, kind: str, pages: Sequence[int], page_count: int,
               orient: bool = False, text_layer: bool = True) -> Iterator[PageImage]:
        """The pages one by one as they are rendered (a streaming call: each is stored on its own);
        every page once, failed ones included (``Renderer.render_pages``)."""
        yield from self.renderer.render_pages(data, doc_id, kind, list(pages), page_count, orient, text_layer)

    def ready(self) -> bool:
        return True


class LayoutStage:
    """GPU replica (or CPU): pages from all requests are batched into one forward pass."""

    def __init__(self, config: LayoutConfig):
        from ray import serve

        self.detector = LayoutDetector(config)
        self._batched = serve.batch(max_batch_size=config.batch_size, batch_wait_timeout_s=0.01)(self._detect_batch)

    async def _detect_batch(self, items: list[tuple[PageImage, Optional[LayoutOptions]]]) -> list[Boxes]:
        pages, options = [i[0] for i in items], [i[1] for i in items]
        return await asyncio.to_thread(self.detector.detect_pages, pages, options)

    async def detect(self, page: PageImage, options: Optional[LayoutOptions] = None) -> Boxes:
        """The page's boxes, or its ``PageError`` when the layout model fails on it (the other pages
        of the batch are unaffected)."""
        return await self._batched((page, options))

    def ready(self) -> bool:
        return True


class RecognizeStage:
    """GPU replica hosting one engine (one vLLM AsyncLLM); every page's blocks go to it at once."""

    async def __init__(self, config: RecognizerConfig):
        self.recognizer = Recognizer(config)
        await self.recognizer.start()

    async def recognize(self, page: PageImage, boxes: list[LayoutBox], request: PageRequest) -> PageResult:
        return await self.recognizer.recognize(page, boxes, request)

    async def check_health(self) -> None:
        await self.recognizer.check_health()

    def unfinished(self) -> int:
        return self.recognizer.unfinished()

    def needs_text_layer(self, mode: TextLayerMode) -> bool:
        return self.recognizer.needs_text_layer(mode)

    def engine_stats(self, reset: bool = False) -> dict:
        return self.recognizer.engine_stats(reset)

    async def ready(self) -> bool:
        await self.recognizer.check_health()
        return True

    def __del__(self):
        close = getattr(getattr(getattr(self, "recognizer", None), "engine", None), "close", None)
        if close is not None:  # the vLLM engine: its EngineCore process, error log and socket folder
            try:
                close()
            except Exception:  # noqa: BLE001 - best effort at replica teardown
                pass

"""The pipeline in this process, as the command line runs it: ``DocumentPipeline`` over the
config's stages built here (``LocalStages``). ``one_page_at_a_time``: the official basic server's
design (concurrency 1: a page's blocks batched, the next page when it is done)."""

from __future__ import annotations

import time
from typing import Optional, Union

from serve_app.config import AppConfig, load_config
from serve_app.options import ParseOptions
from serve_app.pipeline import DocumentPipeline, LocalStages, ParsedDocument


class InProcess:
    """``async with InProcess(config) as local: parsed = await local.parse(data, options)``."""

    def __init__(self, config: Union[dict, AppConfig], one_page_at_a_time: bool = False, timed: bool = False):
        """``timed``: the stages' CPU seconds added up by stage (``cpu``), through ``TimedStages``."""
        self.config, self.sequential, self.timed = load_config(config), one_page_at_a_time, timed
        self.stages: Optional[LocalStages] = None

    async def __aenter__(self) -> "InProcess":
        self.stages = await LocalStages.start(self.config)
        transport = TimedStages(self.stages) if self.timed else self.stages
        window = {"page_window": 1, "render_chunk": 1} if self.sequential else {"page_window": self.config.ingress.page_window}
        ingress = self.config.ingress
        self.pipeline = DocumentPipeline(transport, ingress.retries(), ingress.max_pages,
                                         ingress.max_output_image_side, max_pixels_in_flight=ingress.max_pixels_in_flight,
                                         **window)
        return self

    @property
    def cpu(self) -> dict[str, float]:
        """CPU seconds by stage so far (with ``timed``)."""
        return self.pipeline.stages.cpu

    async def __aexit__(self, *exc) -> None:
        await self.stages.close()

    @property
    def recognizer(self):
        return self.stages.recognizer

    async def parse(self, data: bytes, options: Optional[ParseOptions] = None, kind: Optional[str] = None,
                    log_id: str = "bench") -> ParsedDocument:
        """``options`` by default: the config's, with no output images (a bulk job's defaults; the
        HTTP scenarios send ``visualize: false`` too)."""
        options = options or ParseOptions.from_request({}, self.config.option_defaults("bulk"))
        return await self.pipeline.parse(data, kind, options, log_id)


class TimedStages:
    """A transport around another that adds up the process's CPU seconds spent in each stage call
    (``cpu``: render, layout, recognize). Meaningful one page at a time, when nothing else runs."""

    def __init__(self, inner):
        self.inner, self.cpu = inner, {"render": 0.0, "layout": 0.0, "recognize": 0.0}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def store(self, data):
        return self.inner.store(data)

    async def inspect(self, *args):
        return await self.inner.inspect(*args)

    async def render(self, *args):
        rendered = self.inner.render(*args)
        while True:
            clock = time.process_time()
            try:
                item = await rendered.__anext__()
            except StopAsyncIteration:
                return
            finally:
                self.cpu["render"] += time.process_time() - clock
            yield item

    async def detect(self, *args):
        clock = time.process_time()
        try:
            return await self.inner.detect(*args)
        finally:
            self.cpu["layout"] += time.process_time() - clock

    async def recognize(self, *args):
        clock = time.process_time()
        try:
            return await self.inner.recognize(*args)
        finally:
            self.cpu["recognize"] += time.process_time() - clock

    async def needs_text_layer(self, mode):
        return await self.inner.needs_text_layer(mode)

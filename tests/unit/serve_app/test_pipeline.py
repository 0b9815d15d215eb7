"""The page path of every caller without Ray: DocumentPipeline over the in-process transport
(``LocalStages``) with the real renderer and recognizer; the layout model and the engine are fakes
(beside the point here). A replica lost or full is a transport that raises Ray's own errors."""

from __future__ import annotations

import asyncio
import time

import pytest

from deployments.datamodel import ErrorKind, LayoutBox
from deployments.layout.detector import LayoutDetector
from deployments.recognizer.engines import GenerationResult
from deployments.recognizer.recognizer import Recognizer
from deployments.renderer import InputError, Renderer, RendererConfig
from devtools.documents import corrupt_pdf, text_pdf
from serve_app.config import AppConfig
from serve_app.errors import ServiceError, StageUnavailable, TooManyPages
from serve_app.options import ParseOptions
from serve_app.pipeline import DocumentPipeline, LocalStages, Retries, data_info
from serve_app.respond import document_entries


class Layout(LayoutDetector):
    """The real detector's page handling around a fake model: one text box per page; page
    ``broken`` makes the model raise (its batch is then detected page by page)."""

    def __init__(self, broken=None):
        super().__init__(backend=object())
        self.broken, self.options = broken, []

    def detect(self, pages, options=None):
        for page, opts in zip(pages, options):
            self.options.append(opts)
            if page.page_index == self.broken:
                raise RuntimeError("layout model failed")
        return [[LayoutBox(22, "text", 0.9, (0, 0, p.width // 2, p.height // 4), 1)] for p in pages]


class Engine:
    name, tasks = "fake", frozenset({"ocr", "table", "formula", "chart", "seal", "spotting"})

    async def start(self):
        pass

    async def generate(self, request):
        return GenerationResult(f"read with {request.prompt}", 3, "stop")


class Recorder(Recognizer):
    """The real Recognizer, keeping the PageRequests and pages it was given."""

    requests: list = []
    pages: list = []

    async def recognize(self, page, boxes, request=None):
        self.requests.append(request)
        self.pages.append(page)
        return await super().recognize(page, boxes, request)


def stages(config=None, broken=None, engine=None) -> LocalStages:
    config = config or AppConfig()
    recognizer = Recorder(config.recognizer, engine or Engine())
    recognizer.requests, recognizer.pages = [], []
    return LocalStages(Renderer(RendererConfig(scale=0.5)), Layout(broken), recognizer)


def parser(config=None, broken=None, transport=None):
    """(pipeline, layout, recognizer) of ``config`` over ``transport`` (default: ``stages``)."""
    config = config or AppConfig()
    local = stages(config, broken)
    return DocumentPipeline.for_app(transport(local) if transport else local, config), local.layout, local.recognizer


def parse(p, data, **request):
    return asyncio.run(p.parse(data, "pdf", ParseOptions.from_request(request), "log"))


def test_selected_pages_in_order_with_the_options_and_the_deadline_carried():
    p, layout, recognizer = parser()
    doc = parse(p, text_pdf(4), pageRanges="4,2", layoutThreshold=0.2, temperature=0.1, deadlineSeconds=60)
    assert [out.result.page_index for out in doc.pages] == [3, 1] and doc.page_indices == [3, 1]
    assert all(o.threshold == 0.2 for o in layout.options)
    assert {r.sampling.temperature for r in recognizer.requests} == {0.1}
    assert all(0 < r.timeout_s <= 60 for r in recognizer.requests)  # the document's remaining time
    assert data_info(doc)["numPages"] == 2 and all(out.result.ok for out in doc.pages)


def test_a_failing_layout_call_fails_that_page_only_and_entries_keep_its_place():
    p, _, _ = parser(broken=1)
    options = ParseOptions.from_request({"visualize": False})
    doc = asyncio.run(p.parse(text_pdf(3), "pdf", options, "log"))
    entries = document_entries(doc.pages, options)
    assert [e["status"] for e in entries] == ["ok", "failed", "ok"]
    assert (entries[1]["error"]["stage"], entries[1]["error"]["kind"]) == ("layout", "layout_failed")
    assert "layout model failed" in entries[1]["error"]["message"]
    assert entries[1]["markdown"]["text"] == "" and entries[1]["prunedResult"]["parsing_res_list"] == []
    assert entries[0]["markdown"]["text"] == "read with OCR:" and "outputImages" not in entries[0]


def test_layout_off_reads_the_whole_page_with_the_prompt_label_and_skips_the_layout_stage():
    p, layout, _ = parser()
    options = ParseOptions.from_request({"useLayoutDetection": False, "promptLabel": "table", "visualize": True})
    doc = asyncio.run(p.parse(text_pdf(1), "pdf", options, "log"))
    (entry,) = document_entries(doc.pages, options)
    assert layout.options == [] and "layout_det_res" not in entry["prunedResult"]
    assert entry["prunedResult"]["parsing_res_list"][0]["block_label"] == "table"
    assert set(entry["outputImages"]) == {"layout_order_res"} and entry["inputImage"]


def test_unreadable_documents_and_too_many_pages_raise_with_the_fix():
    p, _, _ = parser(AppConfig(ingress={"max_pages": 2}))
    with pytest.raises(InputError, match="cannot be parsed"):
        parse(p, corrupt_pdf())
    with pytest.raises(TooManyPages, match="accepts at most 2 .*send pageRanges"):
        parse(p, text_pdf(3))
    with pytest.raises(InputError, match="outside 1-3"):
        parse(p, text_pdf(3), pageRanges="2-5")
    assert len(parse(p, text_pdf(3), pageRanges="2-3").pages) == 2


def test_restructure_and_markdown_options_shape_the_entries():
    p, _, _ = parser()
    options = ParseOptions.from_request({"restructurePages": True, "prettifyMarkdown": False, "visualize": False,
                                         "returnMarkdownImages": False})
    entries = document_entries(asyncio.run(p.parse(text_pdf(2), "pdf", options, "log")).pages, options)
    assert [b["global_block_id"] for e in entries for b in e["prunedResult"]["parsing_res_list"]] == [0, 1]
    assert all(e["markdown"]["images"] is None for e in entries)


def test_pages_carry_their_pdf_words_only_where_the_recognizer_reads_them():
    p, _, recognizer = parser()
    parse(p, text_pdf(2), visualize=False)  # a model engine, textLayer auto: the words are not read
    assert [page.text_layer for page in recognizer.pages] == [None, None]
    parse(p, text_pdf(2), visualize=False, textLayer="prefer")
    assert len(recognizer.pages) == 4 and all(page.text_layer.words for page in recognizer.pages[2:])
    recognizer.engine.best_effort = True  # the lite engine reads them (and fits its boxes with them)
    p.text_layers.clear()
    parse(p, text_pdf(1), visualize=False, textLayer="off")
    assert recognizer.pages[-1].text_layer.words


class Flaky:
    """A transport whose first ``times`` calls of ``method`` fail as a Serve handle's do when the
    replica serving them dies (Ray's ActorDiedError); later calls reach the stages. With
    ``mid_stream``, the first render call sends one page, then dies."""

    def __init__(self, method, times=2, mid_stream=False):
        self.method, self.left, self.mid_stream, self.calls, self.asked = method, times, mid_stream, 0, []

    def __call__(self, inner):
        self.inner = inner
        return self

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _dies(self, name) -> bool:
        from ray.exceptions import ActorDiedError

        if name != self.method:
            return False
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            if not self.mid_stream:
                raise ActorDiedError()
            return True
        return False

    def store(self, data):
        return self.inner.store(data)

    async def inspect(self, *args):
        self._dies("inspect")
        return await self.inner.inspect(*args)

    async def render(self, doc, doc_id, kind, pages, *rest):
        self.asked.append(list(pages))
        dies = self._dies("render")
        async for item in self.inner.render(doc, doc_id, kind, pages, *rest):
            yield item
            if dies:
                from ray.exceptions import ActorDiedError

                raise ActorDiedError()

    async def detect(self, *args):
        self._dies("detect")
        return await self.inner.detect(*args)

    async def recognize(self, *args):
        self._dies("recognize")
        return await self.inner.recognize(*args)


RETRYING = AppConfig(ingress={"retry_backoff_s": [0.0], "page_retries": 2})


@pytest.mark.parametrize("method", ["render", "inspect", "detect", "recognize"])
def test_pages_lost_with_a_replica_are_retried_and_come_back_whole(method):
    flaky = Flaky(method)
    p, _, _ = parser(RETRYING, transport=flaky)
    doc = parse(p, text_pdf(3), visualize=False)
    assert [out.result.page_index for out in doc.pages] == [0, 1, 2] and all(out.result.ok for out in doc.pages)
    assert flaky.left == 0


def test_a_renderer_lost_mid_stream_is_asked_again_for_the_pages_it_did_not_send():
    flaky = Flaky("render", times=1, mid_stream=True)
    p, _, _ = parser(RETRYING, transport=flaky)
    doc = parse(p, text_pdf(3), visualize=False)
    assert flaky.asked == [[0, 1, 2], [1, 2]]
    assert [out.result.page_index for out in doc.pages] == [0, 1, 2] and all(out.result.ok for out in doc.pages)


def test_pages_lost_past_the_retries_end_the_document_with_a_503_and_page_errors_are_not_retried():
    flaky = Flaky("recognize", times=100)
    p, _, _ = parser(RETRYING, transport=flaky)
    finished = []
    with pytest.raises(ServiceError) as raised:
        asyncio.run(p.parse(text_pdf(2), "pdf", ParseOptions.from_request({"visualize": False}), "log",
                            on_page=lambda out: asyncio.sleep(0, finished.append(out))))
    assert raised.value.status == 503 and raised.value.retry_after and "retry the document" in raised.value.message
    assert flaky.calls == 2 * 3 and finished == []  # a lost page is never a page result
    p, layout, _ = parser(RETRYING, broken=0)  # a page's own failure: once, not again
    doc = parse(p, text_pdf(1), visualize=False)
    assert doc.pages[0].result.error.kind == ErrorKind.LAYOUT_FAILED and len(layout.options) == 1
    p, _, _ = parser(RETRYING, transport=Flaky("inspect", times=100))
    with pytest.raises(StageUnavailable, match="renderer is unavailable"):
        parse(p, text_pdf(1))


def test_the_deadline_bounds_the_whole_document_with_a_504():
    class Slow(Engine):
        async def generate(self, request):
            await asyncio.sleep(30)

    p = DocumentPipeline(stages(engine=Slow()))
    with pytest.raises(ServiceError) as raised:
        parse(p, text_pdf(2), visualize=False, deadlineSeconds=0.2)
    assert raised.value.status == 504 and "deadlineSeconds" in raised.value.message and raised.value.retry_after


def test_retries_stop_at_the_deadline():
    calls = []

    async def attempt():
        calls.append(time.monotonic())
        return ErrorKind.REPLICA_LOST

    result = asyncio.run(Retries(5, (10.0,)).run(attempt, lambda r: r, deadline=time.monotonic() + 1))
    assert result == ErrorKind.REPLICA_LOST and len(calls) == 1  # the next try would start past the deadline
    assert asyncio.run(Retries(2, ()).run(attempt, lambda r: r)) == ErrorKind.REPLICA_LOST and len(calls) == 4


def test_the_window_lets_calls_in_by_count_and_by_pixels_and_a_large_one_alone():
    from serve_app.pipeline.window import PageWindow

    async def scenario():
        window, order = PageWindow(calls=3, pixels=100), []

        async def call(name, pixels, release: asyncio.Event):
            async with window.hold(pixels):
                order.append(name)
                await release.wait()

        gates = {n: asyncio.Event() for n in "abcd"}
        tasks = [asyncio.create_task(call("a", 60, gates["a"])), asyncio.create_task(call("b", 50, gates["b"])),
                 asyncio.create_task(call("c", 40, gates["c"])), asyncio.create_task(call("d", 500, gates["d"]))]
        for _ in range(20):
            await asyncio.sleep(0)
        first = list(order)  # a (60) and c (40) fit; b (50) waits for pixels, d (500) for an empty window
        gates["a"].set()
        for _ in range(20):
            await asyncio.sleep(0)
        second = list(order)
        gates["b"].set(), gates["c"].set()
        for _ in range(20):
            await asyncio.sleep(0)
        gates["d"].set()
        await asyncio.gather(*tasks)
        return first, second, order, window

    first, second, order, window = asyncio.run(scenario())
    assert first == ["a", "c"] and second == ["a", "c", "b"] and order == ["a", "c", "b", "d"]
    assert (window.calls_left, window.pixels_left) == (3, 100)


def test_a_document_s_pages_in_flight_hold_at_most_its_pixel_budget():
    """Pages reach the engine and wait there until ``together`` of them have arrived: with a budget
    of 2.5 pages' pixels never more than 2 are in flight; without one all 6 are (the control)."""
    class Gathering(Engine):
        def __init__(self, together):
            self.together, self.holding, self.peak, self.open = together, 0, 0, asyncio.Event()

        async def generate(self, request):
            self.holding += 1
            self.peak = max(self.peak, self.holding)
            if self.holding >= self.together:
                self.open.set()
            try:
                await asyncio.wait_for(self.open.wait(), 60)  # a safety net: the control reaches 6
                return GenerationResult("read", 1, "stop")
            finally:
                self.holding -= 1

    data, options = text_pdf(6), ParseOptions.from_request({"visualize": False, "textLayer": "off"})
    page = Renderer(RendererConfig(scale=0.5)).inspect(data).page_sizes[0]
    peaks = []
    for together, budget in ((2, int(2.5 * page[0] * page[1])), (6, 10**9)):
        engine = Gathering(together)
        p = DocumentPipeline(stages(engine=engine), page_window=8, render_chunk=1, max_pixels_in_flight=budget)
        doc = asyncio.run(p.parse(data, "pdf", options, "log"))
        assert [out.result.ok for out in doc.pages] == [True] * 6
        peaks.append(engine.peak)
    assert peaks == [2, 6]

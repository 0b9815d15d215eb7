"""The Serve page path without Ray: DocumentParser over stand-in handles that call the real stage
classes (renderer, recognizer) in-process; layout and engine are fakes (beside the point here)."""

from __future__ import annotations

import asyncio
import inspect
import time
from types import SimpleNamespace

import pytest

from deployments.datamodel import LayoutBox
from deployments.recognizer.engines import GenerationResult
from deployments.recognizer.recognizer import Recognizer
from deployments.renderer import InputError, RendererConfig
from documents import corrupt_pdf, text_pdf
from serve_app.config import AppConfig
from serve_app.options import ParseOptions
from serve_app.parser import DocumentParser, StageUnavailable, TooManyPages, data_info
from serve_app.respond import document_entries
from serve_app.stages import RenderStage


class Handle:
    """``handle.method.remote(...)`` as a Serve handle offers it, calling ``target`` in-process."""

    def __init__(self, target):
        self.target = target

    def __getattr__(self, name):
        method = getattr(self.target, name)

        async def remote(*args, **kwargs):
            result = method(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return SimpleNamespace(remote=remote)


class InProcess:
    """The object store as the stand-in handles need it: data and pages passed as themselves."""

    @staticmethod
    def put(data):
        return data

    @staticmethod
    async def pages(renderer, *args):
        for page in await renderer.render.remote(*args):
            yield page, page


class Layout:
    """One text box per page; page ``broken`` raises (a lost or failing layout replica)."""

    def __init__(self, broken=None):
        self.broken, self.options = broken, []

    def detect(self, page, options):
        self.options.append(options)
        if page.page_index == self.broken:
            raise RuntimeError("layout replica failed")
        return [LayoutBox(22, "text", 0.9, (0, 0, page.width // 2, page.height // 4), 1)]


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


def parser(config=None, broken=None):
    config = config or AppConfig()
    recognizer = Recorder(config.recognizer, Engine())
    recognizer.requests, recognizer.pages = [], []
    layout = Layout(broken)
    p = DocumentParser(Handle(RenderStage(RendererConfig(scale=0.5))), Handle(layout), Handle(recognizer), config,
                       InProcess)
    return p, layout, recognizer


def parse(p, data, deadline=None, **request):
    return asyncio.run(p.parse(data, "pdf", ParseOptions.from_request(request), "log", deadline))


def test_selected_pages_in_order_with_the_options_and_the_deadline_carried():
    p, layout, recognizer = parser()
    deadline = time.monotonic() + 60
    doc = parse(p, text_pdf(4), deadline, pageRanges="4,2", layoutThreshold=0.2, temperature=0.1)
    assert [out.result.page_index for out in doc.pages] == [3, 1] and doc.page_indices == [3, 1]
    assert all(o.threshold == 0.2 for o in layout.options)
    assert {r.sampling.temperature for r in recognizer.requests} == {0.1}
    assert all(0 < r.timeout_s <= 60 for r in recognizer.requests)  # the request's remaining time
    assert data_info(doc)["numPages"] == 2 and all(out.result.ok for out in doc.pages)


def test_a_failing_layout_call_fails_that_page_only_and_entries_keep_its_place():
    p, _, _ = parser(broken=1)
    options = ParseOptions.from_request({"visualize": False})
    doc = asyncio.run(p.parse(text_pdf(3), "pdf", options, "log"))
    entries = document_entries(doc.pages, options)
    assert [e["status"] for e in entries] == ["ok", "failed", "ok"]
    assert entries[1]["error"]["kind"] == "internal_error" and "layout replica failed" in entries[1]["error"]["message"]
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


class Dying(Handle):
    """A handle whose first ``times`` calls of ``method`` fail as a Serve handle's do when the replica
    serving them dies (Ray's ActorDiedError); later calls reach the stage."""

    def __init__(self, target, method, times):
        super().__init__(target)
        self.method, self.left, self.calls = method, times, 0

    def __getattr__(self, name):
        inner = super().__getattr__(name)
        if name != self.method:
            return inner

        async def remote(*args, **kwargs):
            from ray.exceptions import ActorDiedError

            self.calls += 1
            if self.left > 0:
                self.left -= 1
                raise ActorDiedError()
            return await inner.remote(*args, **kwargs)

        return SimpleNamespace(remote=remote)


RETRYING = AppConfig(ingress={"retry_backoff_s": [0.0], "page_retries": 2})


@pytest.mark.parametrize("stage, method", [("renderer", "render"), ("renderer", "inspect"), ("layout", "detect"),
                                           ("recognizer", "recognize")])
def test_pages_lost_with_a_replica_are_retried_and_come_back_whole(stage, method):
    p, _, _ = parser(RETRYING)
    setattr(p, stage, Dying(getattr(p, stage).target, method, times=2))
    doc = parse(p, text_pdf(3), visualize=False)
    assert [out.result.page_index for out in doc.pages] == [0, 1, 2] and all(out.result.ok for out in doc.pages)
    assert getattr(p, stage).left == 0


class DiesMidStream(Handle):
    """A renderer whose first render call sends one page, then dies (Ray's ActorDiedError)."""

    def __init__(self, target):
        super().__init__(target)
        self.asked = []

    def __getattr__(self, name):
        inner = super().__getattr__(name)
        if name != "render":
            return inner

        async def remote(data, doc_id, kind, pages, *rest):
            from ray.exceptions import ActorDiedError

            self.asked.append(list(pages))
            rendered = await inner.remote(data, doc_id, kind, pages, *rest)
            if len(self.asked) > 1:
                return rendered

            def first_then_dead():
                yield next(rendered)
                raise ActorDiedError()

            return first_then_dead()

        return SimpleNamespace(remote=remote)


def test_a_renderer_lost_mid_stream_is_asked_again_for_the_pages_it_did_not_send():
    p, _, _ = parser(RETRYING)
    p.renderer = DiesMidStream(p.renderer.target)
    doc = parse(p, text_pdf(3), visualize=False)
    assert p.renderer.asked == [[0, 1, 2], [1, 2]]
    assert [out.result.page_index for out in doc.pages] == [0, 1, 2] and all(out.result.ok for out in doc.pages)


def test_a_replica_lost_past_the_retries_fails_its_pages_as_replica_lost_and_page_errors_are_not_retried():
    p, _, _ = parser(RETRYING)
    p.recognizer = Dying(p.recognizer.target, "recognize", times=100)
    doc = parse(p, text_pdf(2), visualize=False)
    assert [out.result.error.kind for out in doc.pages] == ["replica_lost", "replica_lost"]
    assert p.recognizer.calls == 2 * 3 and "retry the document" in doc.pages[0].result.error.message
    p, layout, _ = parser(RETRYING, broken=0)  # a page's own failure: once, not again
    doc = parse(p, text_pdf(1), visualize=False)
    assert doc.pages[0].result.error.kind == "internal_error" and len(layout.options) == 1
    p, _, _ = parser(RETRYING)
    p.renderer = Dying(p.renderer.target, "inspect", times=100)
    with pytest.raises(StageUnavailable, match="renderer is unavailable"):
        parse(p, text_pdf(1))


def test_retries_stop_at_the_deadline():
    from serve_app.pagepath import Retries

    calls = []

    async def attempt():
        calls.append(time.monotonic())
        return "replica_lost"

    result = asyncio.run(Retries(5, (10.0,)).run(attempt, lambda r: r, deadline=time.monotonic() + 1))
    assert result == "replica_lost" and len(calls) == 1  # the next try would start past the deadline
    assert asyncio.run(Retries(2, ()).run(attempt, lambda r: r)) == "replica_lost" and len(calls) == 4

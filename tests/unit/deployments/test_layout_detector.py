"""The layout stage's own failure rule around an injected model (Serve batches and bulk batches
alike): a batch that fails is detected again page by page, and only the page that breaks the
model fails, with a layout error; the other pages get their boxes."""

import numpy as np

from deployments.datamodel import ErrorKind, PageError, PageImage, Stage
from deployments.labels import PP_DOCLAYOUT_V2_LABELS
from deployments.layout.detector import LayoutDetector


class Model:
    """Raw detections: one text box per page; a black page breaks the model (and its batch)."""

    labels = PP_DOCLAYOUT_V2_LABELS

    def __init__(self):
        self.batches = []

    def predict(self, images, score_floor):
        self.batches.append(len(images))
        if any(not image.any() for image in images):
            raise RuntimeError("the model failed on this input")
        return [np.array([[22, 0.9, 10, 10, 100, 40, 1]], float) for _ in images]


def page(index, black=False):
    image = np.zeros((200, 150, 3), np.uint8) if black else np.full((200, 150, 3), 255, np.uint8)
    return PageImage("d", index, 3, image)


def test_a_page_that_breaks_the_model_fails_alone_and_the_batch_goes_on():
    model = Model()
    detector = LayoutDetector(backend=model)
    found = detector.detect_pages([page(0), page(1, black=True), page(2)], [None] * 3)
    assert model.batches == [3, 1, 1, 1]  # the batch, then each page alone
    assert [isinstance(f, list) and len(f) == 1 for f in found] == [True, False, True]
    assert found[0][0].label == "text" and isinstance(found[1], PageError)
    assert (found[1].stage, found[1].kind) == (Stage.LAYOUT, ErrorKind.LAYOUT_FAILED)
    assert "page 2: the layout model failed (RuntimeError" in found[1].message

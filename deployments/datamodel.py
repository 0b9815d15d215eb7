"""Typed objects that cross stage boundaries.

They are plain slotted dataclasses: picklable (Ray's object store and Serve handles pickle them),
cheap to build per block, and free of any model or Ray import. Images are RGB ``uint8`` arrays
(H, W, 3); they are never PNG-encoded between stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Optional

import numpy as np

from deployments.textlayer import TextLayer

BBox = tuple[int, int, int, int]


@dataclass(slots=True)
class PageImage:
    """One rendered page (or one input image) on its way to layout detection.

    ``image`` is RGB uint8 of shape (height, width, 3); ``scale`` is the render scale used for
    PDF pages (2.0 = 144 DPI) and 1.0 for images. A page that could not be rendered has
    ``error`` set and an empty image; the rest of its document goes on.
    """

    doc_id: str
    page_index: int
    page_count: int
    image: np.ndarray
    scale: float = 1.0
    error: Optional["PageError"] = None
    #: A PDF page's own words in the image's pixels (None for images and pages without text).
    text_layer: Optional[TextLayer] = None
    #: The angle the page was found at and turned back from (None: orientation not classified).
    angle: Optional[int] = None

    @classmethod
    def failed(cls, doc_id: str, page_index: int, page_count: int, error: "PageError") -> "PageImage":
        """A page that could not be rendered: no pixels, the error; its document goes on."""
        return cls(doc_id, page_index, page_count, np.zeros((0, 0, 3), np.uint8), 0.0, error)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(slots=True)
class LayoutBox:
    """A post-processed layout detection, as in ``layout_det_res.boxes``.

    ``order`` is the 1-based reading-order index among boxes whose label is not in
    ``SKIP_ORDER_LABELS`` (None for those), exactly as PaddleX reports it. ``polygon_points`` is
    the region's outline (float32, N x 2, page pixels) from a mask model (PP-DocLayoutV3) under a
    ``layoutShapeMode`` other than ``rect``; None otherwise.
    """

    cls_id: int
    label: str
    score: float
    coordinate: BBox
    order: Optional[int] = None
    polygon_points: Optional[np.ndarray] = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "cls_id": self.cls_id,
            "label": self.label,
            "score": self.score,
            "coordinate": list(self.coordinate),
            "order": self.order,
        }
        if self.polygon_points is not None:
            data["polygon_points"] = polygon_json(self.polygon_points)
        return data


def polygon_json(points) -> list[list[float]]:
    """Polygon points as PaddleX writes them (its JSON converts numpy arrays with ``tolist``)."""
    return points.tolist() if isinstance(points, np.ndarray) else [list(p) for p in points]


@dataclass(slots=True)
class Block:
    """A planned layout block: what (if anything) is sent to the recognition model.

    ``image`` is the RGB crop to send (the merged image for the first block of a merged group);
    ``prompt`` is None when the block is not sent (images, charts without chart recognition,
    later members of a merged group, blocks a guard skipped).
    """

    index: int
    label: str
    bbox: BBox
    image: Optional[np.ndarray]
    prompt: Optional[str] = None
    group_id: Optional[int] = None
    min_pixels: Optional[int] = None
    max_pixels: Optional[int] = None
    figure_token_map: dict[str, str] = field(default_factory=dict)
    crop: Optional[np.ndarray] = None  # original crop, kept for image-like blocks
    warning: Optional[str] = None  # set when a guard changed or skipped the block
    #: The layout polygon the crop was masked with (outside it is white), None for rectangles.
    polygon_points: Optional[np.ndarray] = None

    @property
    def needs_model(self) -> bool:
        return self.prompt is not None and self.image is not None


@dataclass(slots=True)
class BlockResult:
    """The recognised (and post-processed) content of one block."""

    label: str
    bbox: BBox
    content: str = ""
    group_id: Optional[int] = None
    image_path: Optional[str] = None  # set for blocks rendered as images in Markdown
    num_tokens: int = 0
    finish_reason: Optional[str] = None
    warning: Optional[str] = None
    #: Where the content came from when not from the engine: "text_layer" (the PDF's own text).
    source: Optional[str] = None
    # Set by cross-page restructuring (merge tables, re-level titles).
    global_block_id: Optional[int] = None
    global_group_id: Optional[int] = None
    title_level: Optional[int] = None
    #: The block's layout polygon (``block_polygon_points``), None for rectangles.
    polygon_points: Optional[np.ndarray] = None


class PageStatus(str, Enum):
    OK = "ok"
    FAILED = "failed"


class _Name(str, Enum):
    """A name that is its value wherever it is written (JSON, f-strings, Parquet)."""

    def __str__(self) -> str:
        return self.value


class Stage(_Name):
    """Where a page or a document failed."""

    READ = "read"  # a bulk job's source could not be read
    RENDER = "render"
    LAYOUT = "layout"
    RECOGNIZE = "recognize"
    PIPELINE = "pipeline"  # between the stages (a failure no stage owns)
    SERVE = "serve"  # a bulk job's document sent to a Serve application (--serve-url)


class ErrorKind(_Name):
    """What went wrong: the one list of error kinds, in page errors, answers, metrics and bulk rows."""

    # The document's own problems (InputError; answered 422, never retried)
    UNREADABLE_SOURCE = "unreadable_source"
    EMPTY_INPUT = "empty_input"
    UNSUPPORTED_TYPE = "unsupported_type"
    UNSUPPORTED_OPTION = "unsupported_option"
    NOT_A_PDF = "not_a_pdf"
    NOT_AN_IMAGE = "not_an_image"
    ENCRYPTED_PDF = "encrypted_pdf"
    CORRUPT_PDF = "corrupt_pdf"
    EMPTY_PDF = "empty_pdf"
    IMAGE_TOO_LARGE = "image_too_large"
    CORRUPT_IMAGE = "corrupt_image"
    BAD_PAGE_RANGE = "bad_page_range"
    TOO_MANY_PAGES = "too_many_pages"
    # One page's own problems
    PAGE_TOO_LARGE = "page_too_large"
    PAGE_RENDER_FAILED = "page_render_failed"
    RENDER_FAILED = "render_failed"
    LAYOUT_FAILED = "layout_failed"
    RECOGNITION_FAILED = "recognition_failed"
    # The service's, not the document's (worth another try)
    DEADLINE_EXCEEDED = "deadline_exceeded"
    OVERLOADED = "overloaded"
    REPLICA_LOST = "replica_lost"
    INTERNAL_ERROR = "internal_error"
    # A document sent to a Serve application (bulk --serve-url) that answered with an error
    SERVER_REFUSED = "server_refused"
    UNREACHABLE = "unreachable"
    # A document (bulk) with more failed pages than max_page_error_rate
    TOO_MANY_FAILED_PAGES = "too_many_failed_pages"


@dataclass(slots=True)
class PageError:
    """Why a page failed: which stage, what kind of error, and a message naming the fix."""

    stage: Stage
    kind: ErrorKind
    message: str

    @classmethod
    def of(cls, stage: str, kind: str, message: str) -> "PageError":
        """From stored names (a job's saved page, another server's answer); an unknown name is
        the pipeline's internal error, with the name kept in the message."""
        try:
            return cls(Stage(stage), ErrorKind(kind), message)
        except ValueError:
            return cls(Stage.PIPELINE, ErrorKind.INTERNAL_ERROR, f"{stage}/{kind}: {message}")


@dataclass(slots=True)
class PageResult:
    """Everything known about one page after recognition.

    A failed page is data: ``status=FAILED`` with ``error`` set and no blocks, so the rest of the
    document is still reported.
    """

    page_index: int
    width: int
    height: int
    status: PageStatus = PageStatus.OK
    error: Optional[PageError] = None
    page_count: Optional[int] = None
    layout_boxes: list[LayoutBox] = field(default_factory=list)
    blocks: list[BlockResult] = field(default_factory=list)
    #: Kinds the engine could not read and kept as images (e.g. tables with the lite engine): a
    #: fact about this page's reading, reported in ``model_settings`` and used by the Markdown.
    recognized_as_images: tuple[str, ...] = ()
    #: RGB crops of image-like regions keyed by their Markdown path (``imgs/...jpg``).
    images: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``Spotting:`` results ({rec_polys, rec_texts}) when the page was read with that prompt.
    spotting_res: dict[str, Any] = field(default_factory=dict)
    #: Per-page layout boxes when several pages were concatenated into this one result.
    layout_pages: Optional[list[list[LayoutBox]]] = None
    #: The angle the page was turned back from (useDocOrientationClassify; None: not classified).
    angle: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.status is PageStatus.OK

    @classmethod
    def failed(cls, page: PageImage, error: PageError) -> "PageResult":
        """The one constructor of a failed page: the page's identity and size, the error, no blocks."""
        return cls(page.page_index, page.width, page.height, PageStatus.FAILED, error, page.page_count,
                   angle=page.angle)

    def without_images(self) -> "PageResult":
        """A copy without the image crops (what crosses a process boundary once images are encoded)."""
        return replace(self, images={})

"""Rendering stage (CPU): PDF or image bytes → RGB pages, one at a time.

PDFs are rendered with pymupdf at the official scale (2.0 = 144 DPI) unless a page would exceed
the pixel budget, in which case that page alone is rendered smaller. Images go through Pillow
with a decompression-bomb limit, EXIF orientation, and conversion of CMYK/grey/palette/alpha to
RGB. Inputs that cannot be read at all raise :class:`InputError`; a page that fails to render is
yielded with its error and the document continues.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from dataclasses import dataclass
from typing import Iterator, Literal, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deployments.datamodel import ErrorKind, PageError, PageImage, Stage
from deployments.pdfdraws import MAX_DRAWS, page_draws
from deployments.textlayer import extract_text_layer

FileKind = Literal["pdf", "image"]
_MUPDF_LOCK = threading.Lock()  # MuPDF is not thread-safe; replicas scale out as processes


class InputError(ValueError):
    """A document that cannot be read: ``kind`` is machine-readable, the message names the fix."""

    def __init__(self, kind: ErrorKind, message: str):
        super().__init__(message)
        self.kind = ErrorKind(kind)

    def __reduce__(self):  # crosses Serve handles as itself
        return type(self), (self.kind, str(self))


class RendererConfig(BaseModel):
    """Rendering settings. Example (YAML): ``{scale: 2.0, max_page_pixels: 40000000}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: float = Field(2.0, gt=0, le=10, description="PDF render scale; 2.0 = 144 DPI, as PaddleX.")
    max_page_pixels: int = Field(40_000_000, gt=0, description="Pages larger than this at `scale` render smaller.")
    min_scale: float = Field(0.25, gt=0, description="Smallest scale a huge page may be lowered to before it fails.")
    max_image_pixels: Optional[int] = Field(
        None, gt=0, description="Images larger than this are refused (bomb limit: a small compressed file can decode to "
        "many pixels); at most max_page_pixels, the budget of a rendered page (None: max_page_pixels).")
    num_cpus: float = Field(0.5, gt=0, description="CPUs reserved per renderer replica.")

    @model_validator(mode="after")
    def _image_within_page_budget(self) -> "RendererConfig":
        if self.max_image_pixels is not None and self.max_image_pixels > self.max_page_pixels:
            raise ValueError(f"max_image_pixels ({self.max_image_pixels:,}) must not exceed max_page_pixels "
                             f"({self.max_page_pixels:,}): an image is one page and gets a page's pixel budget")
        return self

    @property
    def image_pixels(self) -> int:
        """The largest image accepted, in pixels."""
        return self.max_page_pixels if self.max_image_pixels is None else self.max_image_pixels


@dataclass(slots=True)
class DocumentInfo:
    """What a document is, before rendering: kind, page count, rendered page sizes (w, h)."""

    kind: FileKind
    page_count: int
    page_sizes: list[tuple[int, int]]


def sniff_kind(data: bytes) -> FileKind:
    """'pdf' when the bytes start like a PDF (within the first 1 KiB, as readers allow), else 'image'."""
    return "pdf" if b"%PDF-" in data[:1024] else "image"


MAX_PAGE_RANGES = 100  # ranges in one pageRanges spec (a spec is for people; thousands are an attack)


def check_page_ranges(spec: Optional[str]) -> list[tuple[int, int]]:
    """'1-3,5' → [(1, 3), (5, 5)]: the syntax alone (the page count is not known yet)."""
    ranges: list[tuple[int, int]] = []
    parts = (spec or "").replace(" ", "").split(",")
    if len(parts) > MAX_PAGE_RANGES:
        raise InputError(ErrorKind.BAD_PAGE_RANGE, f"{len(parts)} ranges; at most {MAX_PAGE_RANGES} are accepted "
                         "(join neighbouring pages into ranges such as '1-40')")
    for part in parts:
        if not part and not spec:
            continue
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if hi else int(lo)
        except ValueError:
            raise InputError(ErrorKind.BAD_PAGE_RANGE, f"{spec!r} is not like '1-3,5' (1-based, inclusive)") from None
        if first < 1:
            raise InputError(ErrorKind.BAD_PAGE_RANGE, f"{part!r} starts below 1; pages are numbered from 1")
        if first > last:
            raise InputError(ErrorKind.BAD_PAGE_RANGE, f"{part!r} is reversed; write '{last}-{first}'")
        ranges.append((first, last))
    return ranges


def parse_page_ranges(spec: Optional[str], page_count: int) -> list[int]:
    """'1-3,5' (1-based, inclusive) → [0, 1, 2, 4]; None or '' → every page."""
    if not spec:
        return list(range(page_count))
    pages: list[int] = []
    taken: list[tuple[int, int]] = []  # ranges already selected (each page once, in the order asked)
    for first, last in check_page_ranges(spec):
        if last > page_count:
            raise InputError(ErrorKind.BAD_PAGE_RANGE, f"page range {first}-{last} is outside 1-{page_count} (the document "
                             f"has {page_count} pages)")
        start = first
        for lo, hi in sorted(taken):  # the pages of [first, last] not taken yet: linear in the pages selected
            if hi >= start and lo <= last:
                pages.extend(range(start - 1, lo - 1))
                start = max(start, hi + 1)
        pages.extend(range(start - 1, last))
        taken.append((first, last))
    return pages


class Renderer:
    """Turns document bytes into :class:`PageImage` objects (RGB, never PNG-encoded)."""

    def __init__(self, config: Optional[RendererConfig] = None):
        self.config = config or RendererConfig()

    @staticmethod
    def get_deployment_options(config: RendererConfig) -> dict:
        return {"ray_actor_options": {"num_cpus": config.num_cpus}}

    def inspect(self, data: bytes, kind: Optional[FileKind] = None) -> DocumentInfo:
        """Validate the document and report its page count and rendered page sizes."""
        kind = self._check_kind(data, kind)
        if kind == "image":
            width, height = self._open_image(data).size
            return DocumentInfo("image", 1, [(width, height)])
        with _MUPDF_LOCK:
            doc = self._open_pdf(data)
            try:
                sizes = [self._pixel_size(page.rect, self._page_scale(page.rect)[0]) for page in doc]
            finally:
                doc.close()
        return DocumentInfo("pdf", len(sizes), sizes)

    def render(self, data: bytes, doc_id: str = "", kind: Optional[FileKind] = None,
               pages: Optional[Sequence[int]] = None, orient: bool = False,
               text_layer: bool = True) -> Iterator[PageImage]:
        """Yield the document's pages (0-based ``pages``, default all) in order, one at a time;
        with ``orient`` each page is turned upright first (``deployments.orientation``); with
        ``text_layer`` a PDF page carries its own words (``Recognizer.needs_text_layer``)."""
        kind = self._check_kind(data, kind)
        if orient:
            from deployments.orientation import OrientationClassifier, OrientationUnavailable

            try:
                classifier = OrientationClassifier()
                classifier.session()
            except OrientationUnavailable as exc:
                raise InputError(ErrorKind.UNSUPPORTED_OPTION, str(exc)) from None
            for page in self.render(data, doc_id, kind, pages, text_layer=text_layer):
                yield classifier.upright(page)
            return
        if kind == "image":
            yield PageImage(doc_id, 0, 1, self._image_array(self._open_image(data)), 1.0)
            return
        yield from self._render_pdf(data, doc_id, pages, text_layer)

    def render_pages(self, data: bytes, doc_id: str, kind: Optional[FileKind], pages: Sequence[int],
                     page_count: int, orient: bool = False, text_layer: bool = True) -> Iterator[PageImage]:
        """``render``'s pages, each of ``pages`` exactly once whatever happens: should rendering
        stop with an error part-way (the document opened but breaks later), the pages not yielded
        yet come back failed with it. The stage's own failure rule, for Serve and bulk jobs alike."""
        sent = 0
        try:
            for page in self.render(data, doc_id, kind, pages, orient, text_layer):
                yield page
                sent += 1
        except InputError as exc:
            failure = PageError(Stage.RENDER, exc.kind, str(exc))
        except Exception as exc:  # noqa: BLE001 - the pages not sent fail; those sent stay
            failure = PageError(Stage.RENDER, ErrorKind.RENDER_FAILED, f"rendering stopped: {type(exc).__name__}: {exc}")
        else:
            return
        for index in list(pages)[sent:]:
            yield PageImage.failed(doc_id, index, page_count, failure)

    # -- PDF ---------------------------------------------------------------------------------
    def _render_pdf(self, data, doc_id, pages, text_layer: bool) -> Iterator[PageImage]:
        with _MUPDF_LOCK:
            doc = self._open_pdf(data)
            count = doc.page_count
        try:
            for index in pages if pages is not None else range(count):
                with _MUPDF_LOCK:
                    page = self._render_page(doc, index, count, doc_id, text_layer)
                yield page
        finally:
            with _MUPDF_LOCK:
                doc.close()

    def _render_page(self, doc, index: int, count: int, doc_id: str, text_layer: bool) -> PageImage:
        import pymupdf

        try:
            page = doc.load_page(index)
            scale, error = self._page_scale(page.rect)
            if error:
                return _failed(doc_id, index, count, ErrorKind.PAGE_TOO_LARGE, error)
            draws = page_draws(doc, page)
            if draws > MAX_DRAWS:
                return _failed(doc_id, index, count, ErrorKind.PAGE_TOO_LARGE, (
                    f"page {index + 1} nests drawings (Form XObjects) that would be drawn more than {MAX_DRAWS:,} "
                    "times; it is not rendered. Flatten or re-save the PDF; the other pages are unaffected"))
            pix = page.get_pixmap(matrix=pymupdf.Matrix(scale, scale), colorspace=pymupdf.csRGB, alpha=False)
            rows = np.frombuffer(pix.samples_mv, dtype=np.uint8).reshape(pix.height, pix.stride)
            image = rows[:, : pix.width * 3].reshape(pix.height, pix.width, 3).copy()
            words = extract_text_layer(page, scale) if text_layer else None
            return PageImage(doc_id, index, count, image, scale, text_layer=words)
        except Exception as exc:  # noqa: BLE001 - one bad page must not fail the document
            return _failed(doc_id, index, count, ErrorKind.PAGE_RENDER_FAILED,
                           f"page {index + 1} could not be rendered ({exc}); the other pages are unaffected. "
                           "Re-saving the PDF (e.g. `qpdf in.pdf out.pdf`) often repairs it")

    def _page_scale(self, rect) -> tuple[float, Optional[str]]:
        """The configured scale, lowered to fit the pixel budget (or an error if it cannot)."""
        scale, cfg = self.config.scale, self.config
        area = max(rect.width, 1e-6) * max(rect.height, 1e-6)
        if area * scale * scale <= cfg.max_page_pixels:
            return scale, None
        fitted = math.floor(math.sqrt(cfg.max_page_pixels / area) * 1000) / 1000
        if fitted < cfg.min_scale:
            return fitted, (f"page is {rect.width:.0f}x{rect.height:.0f} pt; even at scale {cfg.min_scale} it needs "
                            f"{area * cfg.min_scale ** 2:,.0f} pixels > max_page_pixels={cfg.max_page_pixels:,}; "
                            "raise max_page_pixels or lower min_scale")
        return fitted, None

    @staticmethod
    def _pixel_size(rect, scale: float) -> tuple[int, int]:
        return int(round(rect.width * scale)), int(round(rect.height * scale))

    @staticmethod
    def _open_pdf(data: bytes):
        import pymupdf

        try:
            doc = pymupdf.open(stream=data, filetype="pdf")
        except Exception as exc:  # noqa: BLE001 - pymupdf raises several types for bad files
            raise InputError(ErrorKind.CORRUPT_PDF, f"the PDF cannot be parsed ({exc}); repair or re-save it "
                             "(e.g. `qpdf in.pdf out.pdf`) and send it again") from None
        if doc.needs_pass:
            doc.close()
            raise InputError(ErrorKind.ENCRYPTED_PDF, "the PDF is password-protected; decrypt it first "
                             "(e.g. `qpdf --decrypt --password=PASSWORD in.pdf out.pdf`)")
        if doc.page_count == 0:
            doc.close()
            raise InputError(ErrorKind.EMPTY_PDF, "the PDF has no pages; check that the right file was sent")
        return doc

    # -- images ------------------------------------------------------------------------------
    def _open_image(self, data: bytes):
        from PIL import Image, UnidentifiedImageError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise InputError(ErrorKind.IMAGE_TOO_LARGE, "the image has too many pixels for Pillow's safety limit; "
                             "downscale it before sending") from None
        except (UnidentifiedImageError, OSError):
            raise InputError(ErrorKind.UNSUPPORTED_TYPE, f"the file is neither a PDF nor an image Pillow can read "
                             f"(it starts with {data[:8]!r}); send a PDF, PNG, JPEG, TIFF, BMP or WebP") from None
        width, height = image.size
        if width * height > self.config.image_pixels:
            raise InputError(ErrorKind.IMAGE_TOO_LARGE, f"the image is {width}x{height} = {width * height:,} pixels > "
                             f"max_image_pixels={self.config.image_pixels:,}; downscale it or raise the limit")
        return image

    @staticmethod
    def _image_array(image) -> np.ndarray:
        """Decode with EXIF orientation applied; CMYK/grey/palette → RGB, alpha flattened on white."""
        from PIL import Image, ImageOps

        try:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                canvas = Image.new("RGB", rgba.size, (255, 255, 255))
                canvas.paste(rgba, mask=rgba.getchannel("A"))
                image = canvas
            return np.asarray(image.convert("RGB")).copy()
        except OSError as exc:
            raise InputError(ErrorKind.CORRUPT_IMAGE, f"the image cannot be decoded ({exc}); re-export it and send it again") from None

    def _check_kind(self, data: bytes, kind: Optional[FileKind]) -> FileKind:
        if not data:
            raise InputError(ErrorKind.EMPTY_INPUT, "the file is empty (0 bytes); send the document's bytes")
        sniffed = sniff_kind(data)
        if kind == "pdf" and sniffed != "pdf":
            raise InputError(ErrorKind.NOT_A_PDF, f"fileType says PDF but the bytes do not start like one "
                             f"({data[:8]!r}); send fileType=1 for images or the real PDF")
        if kind == "image" and sniffed == "pdf":
            raise InputError(ErrorKind.NOT_AN_IMAGE, "fileType says image but the bytes are a PDF; send fileType=0")
        return kind or sniffed


def _failed(doc_id: str, index: int, count: int, kind: ErrorKind, message: str) -> PageImage:
    return PageImage.failed(doc_id, index, count, PageError(Stage.RENDER, kind, message))

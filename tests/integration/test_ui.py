"""The /ui page in a real headless Chromium (Debian's ``chromium``, installed by ``make test``, driven
by Playwright), against the session's application with an API key: pick a generated PDF, parse,
wait for the last page's Markdown, check the text, the table, the formula and the layout overlay,
download the zip, save a screenshot."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import httpx
import pymupdf
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def document() -> bytes:
    """Three pages: two of text, then a ruled table and a formula under a paragraph."""
    from devtools.documents import text_pdf

    doc = pymupdf.open(stream=text_pdf(2, "Page {n} of the browser one. " * 6), filetype="pdf")
    page = doc.new_page()
    page.insert_textbox(pymupdf.Rect(60, 60, 535, 180), "The last page of the browser one has a table below. "
                        + "Its rows and columns are ruled, and every cell holds a word and a number. " * 3, fontsize=11)
    x1, y1, x2, y2 = 60, 200, 535, 360
    for i in range(5):
        page.draw_line((x1, y1 + i * (y2 - y1) / 4), (x2, y1 + i * (y2 - y1) / 4))
    for j in range(4):
        page.draw_line((x1 + j * (x2 - x1) / 3, y1), (x1 + j * (x2 - x1) / 3, y2))
    for i in range(4):
        for j in range(3):
            page.insert_text((x1 + 10 + j * (x2 - x1) / 3, y1 + 25 + i * (y2 - y1) / 4), f"cell {i}{j}", fontsize=11)
    return doc.tobytes()


def test_ui_parses_a_pdf_in_a_real_browser(jobs_url, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    page_html = httpx.get(f"{jobs_url}/ui", follow_redirects=True)
    assert page_html.status_code == 200 and "vendor/marked.umd.js" in page_html.text  # no API key for the page
    assert httpx.get(f"{jobs_url}/ui/../serve_app/config.py").status_code == 404
    pdf = tmp_path / "three pages.pdf"
    pdf.write_bytes(document())

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        outside = []
        page.on("request", lambda r: None if r.url.startswith(jobs_url.rsplit("/", 1)[0]) or r.url.startswith("data:")
                or r.url.startswith("blob:") else outside.append(r.url))
        page.goto(f"{jobs_url}/ui/")
        page.fill("#api-key", "k")
        page.set_input_files("#file", str(pdf))
        page.click("#parse")
        last = page.locator('[data-page="2"] .markdown')
        last.wait_for(timeout=300_000)
        page.locator("#downloads").wait_for(state="visible", timeout=300_000)
        shot = tmp_path / "ui.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")

        assert "The last page of the browser one" in last.inner_text()
        assert last.locator("table td").count() >= 12 and "cell 32" in last.locator("table").inner_text()
        assert "Page 2 of the browser one" in page.locator('[data-page="1"] .markdown').inner_text()
        assert page.locator('[data-page="0"] .overlay svg rect').count() >= 1  # layout_det_res boxes
        assert page.locator("#status").inner_text().startswith("done: 3 pages")
        assert page.locator("#error").is_hidden()
        formula = page.evaluate("renderMarkdown('Energy $$E = mc^2$$ here', {})")
        assert 'class="katex-display"' in formula  # formulas rendered by the vendored KaTeX
        assert "<script" not in page.evaluate("renderMarkdown('<script>alert(1)</script> x', {})")

        with page.expect_download() as download:
            page.click("#dl-zip")
        archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
        names = archive.namelist()
        assert {"three pages.md", "three pages.json"} <= set(names)
        assert any(n.startswith("layout/page_3_") for n in names)
        result = json.loads(archive.read("three pages.json"))
        assert len(result["layoutParsingResults"]) == 3 and result["dataInfo"]["numPages"] == 3
        assert "cell 32" in archive.read("three pages.md").decode()

        browser.close()
    assert outside == [], f"the page loaded files from elsewhere: {outside}"

"""``GET /ui/…``: the page and its files, from this package's directory only (no listing, no
paths outside it). The page talks to the API with relative URLs, so it works under any route prefix."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi.responses import FileResponse, RedirectResponse, Response

from serve_app.http import api

UI_DIR = Path(__file__).resolve().parent
SERVED = {".html", ".js", ".css", ".woff2"}


class UiRoutes:
    @api.get("/ui", include_in_schema=False)
    async def ui_root(self) -> Response:
        return RedirectResponse("ui/", status_code=308)  # relative: keeps the application's route prefix

    @api.get("/ui/{name:path}", include_in_schema=False)
    async def ui_file(self, name: str) -> Response:
        if "\x00" in name:  # no file has it; resolve() would raise on it
            return Response(status_code=404)
        path = (UI_DIR / (name or "index.html")).resolve()
        if not path.is_relative_to(UI_DIR) or path.suffix not in SERVED or not path.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        media = mimetypes.guess_type(path.name)[0] or ("font/woff2" if path.suffix == ".woff2" else "text/plain")
        return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})

"""Serves plotly.js (the admin's analytics charts) from the installed `plotly` wheel, which
ships it as package data: offline, pinned in requirements.txt, never copied into the repo.
A static files finder, so `collectstatic` and WhiteNoise (WHITENOISE_USE_FINDERS) see it as
`analytics/vendor/plotly.min.js`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Warning as CheckWarning
from django.core.files.storage import FileSystemStorage

PLOTLY_STATIC_PATH = "analytics/vendor/plotly.min.js"
_PREFIX, _NAME = PLOTLY_STATIC_PATH.rsplit("/", 1)


def plotly_js_path() -> Path | None:
    """plotly.min.js inside the installed plotly package (found without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / _NAME
    return path if path.is_file() else None


class PlotlyFinder(BaseFinder):
    def check(self, **kwargs):
        if plotly_js_path() is None:
            return [
                CheckWarning(
                    "plotly is not installed: the analytics charts cannot load plotly.min.js.", id="analytics.W001"
                )
            ]
        return []

    def find(self, path, find_all=False, **kwargs):
        find_all = find_all or kwargs.get("all", False)
        source = plotly_js_path() if path == PLOTLY_STATIC_PATH else None
        if source is None:
            return [] if find_all else None
        return [str(source)] if find_all else str(source)

    def list(self, ignore_patterns):
        source = plotly_js_path()
        if source is None:
            return
        storage = FileSystemStorage(location=str(source.parent))
        storage.prefix = _PREFIX  # collectstatic and WhiteNoise put it under this path
        yield _NAME, storage

"""What a request is: a page view, an asset, or other (docs/architecture.md, step 4)."""

from __future__ import annotations

from functools import lru_cache

PAGE, ASSET, OTHER = "page", "asset", "other"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
PAGE_EXTENSIONS = frozenset({"html", "htm", "php", "asp", "aspx", "jsp", "shtml"})


@lru_cache(maxsize=65536)
def is_html_path(path: str) -> bool:
    """A path that names a page: no extension in its last segment, or a page extension."""
    last = path.rsplit("/", 1)[-1]
    if "." not in last:
        return True
    return last.rsplit(".", 1)[1].lower() in PAGE_EXTENSIONS


@lru_cache(maxsize=1024)
def is_html_type(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES


def kind_of(method: str, status: int, content_type: str, path: str) -> str:
    """page: a GET answered 2xx or 304 with HTML, judged by sc-content-type where the
    log has a value for it, else by the path. asset: any other GET or HEAD answered
    2xx or 304. other: everything else (redirects, errors, other methods)."""
    if not (200 <= status < 300 or status == 304):
        return OTHER
    if method == "GET":
        html = is_html_path(path) if content_type == "-" else is_html_type(content_type)
        return PAGE if html else ASSET
    return ASSET if method == "HEAD" else OTHER

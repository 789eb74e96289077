"""A small client for the HTTP JSON API, on the standard library only.

Used by ``flamehouse query`` and by tests; it keeps the CLI free of extra
runtime dependencies. Every method returns the decoded JSON and raises
:class:`ApiError` with the server's own error message on failure.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

log = logging.getLogger(__name__)


class ApiError(Exception):
    """The API answered with an error, or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message


class ApiClient:
    """Calls ``/api/v1/...`` on a flamehouse server such as ``http://127.0.0.1:7080``."""

    def __init__(self, base_url: str, timeout: float = 30) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"server URL must be http(s)://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def top(
        self,
        selector: str = "",
        from_: str | None = None,
        to: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        *,
        gpu_state: str | None = None,
        gpu_idle_below: float | None = None,
    ) -> dict[str, Any]:
        """``{"total_samples": int, "functions": [{"function", "file", "self", "total"}, ...]}``.

        ``kind``, ``gpu_state`` (``any``, ``busy``, ``idle``, ``none``) and
        ``gpu_idle_below`` are left to the selector and the server's defaults when ``None``.
        """
        params: dict[str, Any] = {"selector": selector, "from": from_, "to": to, "kind": kind, "limit": limit}
        params.update(gpu_state=gpu_state, gpu_idle_below=gpu_idle_below)
        return self._object(self._get("/api/v1/top", params))

    def lines(
        self,
        selector: str = "",
        from_: str | None = None,
        to: str | None = None,
        *,
        kind: str | None = None,
        gpu_state: str | None = None,
        gpu_idle_below: float | None = None,
        limit: int = 100,
        rate: float | None = None,
    ) -> dict[str, Any]:
        """``{"total_samples", "rate", "lines": [{"file", "line", "function", "self", "total",
        "cpu_seconds", "gpu_busy_seconds", "gpu_idle_seconds"}, ...]}``."""
        params: dict[str, Any] = {"selector": selector, "from": from_, "to": to, "kind": kind, "limit": limit}
        params.update(rate=rate, gpu_state=gpu_state, gpu_idle_below=gpu_idle_below)
        return self._object(self._get("/api/v1/lines", params))

    def gpu(
        self, selector: str = "", from_: str | None = None, to: str | None = None, step: int | None = None
    ) -> dict[str, Any]:
        """``{"step", "devices": [{"host", "index", "uuid", "name", "series"}], "processes": [...]}``."""
        return self._object(self._get("/api/v1/gpu", {"selector": selector, "from": from_, "to": to, "step": step}))

    def timeline(
        self,
        selector: str = "",
        from_: str | None = None,
        to: str | None = None,
        kind: str = "cpu",
        step: int | None = None,
    ) -> dict[str, Any]:
        """``{"step", "time": [...], "samples": [...], "gpu_util": [...]}``."""
        params = {"selector": selector, "from": from_, "to": to, "kind": kind, "step": step}
        return self._object(self._get("/api/v1/timeline", params))

    def flamegraph(
        self,
        selector: str = "",
        from_: str | None = None,
        to: str | None = None,
        kind: str | None = None,
        max_nodes: int | None = None,
        *,
        by: str | None = None,
    ) -> dict[str, Any]:
        """``{"total_samples", "truncated", "root": {"name", "file", "self", "total", "children"}}``.

        ``by="line"`` splits nodes per source line (they carry ``"line"``).
        """
        params = {"selector": selector, "from": from_, "to": to, "kind": kind, "max_nodes": max_nodes, "by": by}
        return self._object(self._get("/api/v1/flamegraph", params))

    def diff(
        self,
        base: str,
        base_range: tuple[str | None, str | None],
        comparison: str | None,
        comparison_range: tuple[str | None, str | None],
        *,
        kind: str | None = None,
        gpu_state: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """``{"base_total", "comparison_total", "truncated", "source", "root", "changes": [{"function", "file",
        "base_self", "comparison_self", "base_share", "comparison_share", "delta"}, ...]}``."""
        params: dict[str, Any] = {"base": base, "base_from": base_range[0], "base_to": base_range[1]}
        params.update(comparison=comparison, comparison_from=comparison_range[0], comparison_to=comparison_range[1])
        params.update(kind=kind, gpu_state=gpu_state, limit=limit)
        return self._object(self._get("/api/v1/diff", params))

    def labels(self, from_: str | None = None, to: str | None = None) -> list[str]:
        """Label names with data in the range."""
        body = self._object(self._get("/api/v1/labels", {"from": from_, "to": to}))
        return [str(name) for name in body.get("labels", [])]

    def label_values(self, name: str, selector: str = "", from_: str | None = None, to: str | None = None) -> list[str]:
        """Values of label ``name`` among the selected samples."""
        path = f"/api/v1/labels/{quote(name, safe='')}/values"
        body = self._object(self._get(path, {"selector": selector, "from": from_, "to": to}))
        return [str(value) for value in body.get("values", [])]

    def export(
        self,
        format_: str,
        selector: str = "",
        from_: str | None = None,
        to: str | None = None,
        *,
        kind: str | None = None,
        gpu_state: str | None = None,
        per_thread: bool = False,
        rate: float | None = None,
    ) -> bytes:
        """The selection as a ``speedscope``, ``pprof`` or ``folded`` file, as the server rendered it.

        ``kind``, ``gpu_state`` and ``rate`` are left to the server (and the selector) when ``None``.
        """
        params: dict[str, Any] = {"format": format_, "selector": selector, "from": from_, "to": to, "kind": kind}
        params.update(gpu_state=gpu_state, per_thread="true" if per_thread else None, rate=rate)
        return self._get_bytes("/api/v1/export", params, "*/*")

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        body = self._get_bytes(path, params, "application/json")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ApiError(0, f"{self.base_url}{path} did not return JSON: {exc}") from exc

    def _get_bytes(self, path: str, params: dict[str, Any], accept: str) -> bytes:
        query = urlencode({k: v for k, v in params.items() if v is not None and v != ""})
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 (scheme checked)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (scheme checked)
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, _error_message(exc)) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ApiError(0, f"cannot reach {self.base_url}: {getattr(exc, 'reason', exc)}") from exc

    @staticmethod
    def _object(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(0, f"expected a JSON object, got {type(body).__name__}")
        return body


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The ``error`` field of an error response, else its text."""
    try:
        raw = exc.read()
    except OSError:
        return exc.reason if isinstance(exc.reason, str) else str(exc)
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:500] or str(exc.reason)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return json.dumps(body)[:500]

"""JSON errors outside DRF views: unknown /api/ paths, oversized bodies and unexpected crashes answer
JSON with the right status instead of an HTML page."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from .errors import error_body

log = logging.getLogger(__name__)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


class JsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if _is_api(request) and response.status_code == 404 and "json" not in response.get("Content-Type", ""):
            return JsonResponse(error_body("not_found", "No such endpoint or object."), status=404)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not _is_api(request):
            return None
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(error_body("too_large", "The request body is larger than the limit."), status=413)
        log.exception("unhandled error on %s", request.path)
        return JsonResponse(error_body("server_error", "Unexpected server error; it has been logged."), status=500)

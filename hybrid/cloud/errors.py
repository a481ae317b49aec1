"""The cloud path's errors: one CloudError subclass per documented refusal, each with its user message.

All exit 12 (``CloudError``); ``code`` keeps the service's application code or HTTP status for scripts
and logs. Messages never contain the token.

::

    CloudError                      exit 12
    ├── CloudAuthError              1001/1010/1011/HTTP 401 that a fresh token did not cure
    ├── CloudSessionError           1002 that a new session did not cure
    ├── NoCreditsError              2001: the registration link, or "top up"
    ├── UnsupportedFileError        4001 (and the pre-flight type check): the accepted formats
    ├── FileTooLargeError           4002 (and the pre-flight size check): compress locally instead
    ├── PlanRequiredError           HTTP 402: the free plan cannot export
    ├── RateLimitedError            HTTP 429 after one wait and retry
    ├── CloudUnavailableError       network errors and 5xx after bounded retries
    ├── CloudProtocolError          an answer that matches no documented shape
    ├── RenderFailedError           the render failed twice (second time with a new render id)
    └── CloudTimeoutError           the overall deadline passed
"""

from __future__ import annotations

from ..errors import CloudError

__all__ = ["CloudError"]  # re-exported: callers catch the whole family from here

ACCEPTED_EXTENSIONS = (
    ".mp4", ".mov", ".avi", ".webm", ".mkv", ".jpg", ".png", ".gif", ".webp", ".mp3", ".wav", ".m4a", ".aac",
)  # fmt: skip
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".webm", ".mkv")
MAX_UPLOAD_BYTES = 500 * 10**6
REGISTER_URL = "https://nemovideo.com/register?bind={user_id}"


class CloudErrorWithCode(CloudError):
    """A CloudError that remembers the service's code (application code or HTTP status)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class CloudAuthError(CloudErrorWithCode):
    pass


class CloudSessionError(CloudErrorWithCode):
    pass


class NoCreditsError(CloudErrorWithCode):
    pass


class UnsupportedFileError(CloudErrorWithCode):
    pass


class FileTooLargeError(CloudErrorWithCode):
    pass


class PlanRequiredError(CloudErrorWithCode):
    pass


class RateLimitedError(CloudErrorWithCode):
    pass


class CloudUnavailableError(CloudErrorWithCode):
    pass


class CloudProtocolError(CloudErrorWithCode):
    pass


class RenderFailedError(CloudErrorWithCode):
    pass


class CloudTimeoutError(CloudErrorWithCode):
    pass


def formats_text() -> str:
    return ", ".join(ext.lstrip(".") for ext in ACCEPTED_EXTENSIONS)


def no_credits(user_id: str | None, anonymous: bool) -> NoCreditsError:
    if anonymous and user_id:
        return NoCreditsError(
            "the render service has no credits left for this anonymous user: register at "
            f"{REGISTER_URL.format(user_id=user_id)} (or use --local)",
            code=2001,
        )
    return NoCreditsError(
        "the render service has no credits left: top up credits (or use --local)", code=2001
    )


def unsupported_file(detail: str = "") -> UnsupportedFileError:
    extra = f" ({detail})" if detail else ""
    return UnsupportedFileError(
        f"the render service does not accept this file{extra}; it accepts {formats_text()} "
        "(use --local to compress it on this machine)",
        code=4001,
    )


def too_large(size_text: str = "") -> FileTooLargeError:
    what = f" ({size_text})" if size_text else ""
    return FileTooLargeError(
        f"the file is too large for the render service{what}: the limit is 500 MB; "
        "compress it locally with --local, or trim it first",
        code=4002,
    )


def plan_required() -> PlanRequiredError:
    return PlanRequiredError(
        "the render service's free plan cannot export: register or upgrade your plan to export "
        "(or use --local)",
        code=402,
    )

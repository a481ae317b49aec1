"""The cloud path: a client for NemoVideo's render API, and our own compatible render node.

``compress_cloud`` is the cloud twin of ``hybrid.local.compress``; ``hybrid serve`` runs a node.
"""

from __future__ import annotations

from .client import ClientOptions, NemoClient
from .config import Store
from .errors import (
    CloudAuthError,
    CloudError,
    CloudProtocolError,
    CloudSessionError,
    CloudTimeoutError,
    CloudUnavailableError,
    FileTooLargeError,
    NoCreditsError,
    PlanRequiredError,
    RateLimitedError,
    RenderFailedError,
    UnsupportedFileError,
)
from .executor import CloudSettings, compress_cloud, preflight

__all__ = [
    "ClientOptions",
    "CloudAuthError",
    "CloudError",
    "CloudProtocolError",
    "CloudSessionError",
    "CloudSettings",
    "CloudTimeoutError",
    "CloudUnavailableError",
    "FileTooLargeError",
    "NemoClient",
    "NoCreditsError",
    "PlanRequiredError",
    "RateLimitedError",
    "RenderFailedError",
    "Store",
    "UnsupportedFileError",
    "compress_cloud",
    "preflight",
]

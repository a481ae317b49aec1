"""One exception tree for everything hybrid can refuse or fail at.

Every error carries the exit code the command line uses for it, and a message that is one line a user
can act on. The command line maps this tree to messages in one place (``cli.py``); nothing else prints.

::

    HybridError                      exit 1   anything below, and internal invariants
    ├── InputError                   exit 3   the input path: missing, a directory, unreadable
    ├── MediaError                   exit 4   the input is not a usable video: empty, corrupt, truncated,
    │                                         not media, an image, audio only
    ├── PlanError                    exit 5   the request cannot be met: an impossible target,
    │                                         conflicting settings
    ├── OutputError                  exit 6   the output: same as the input, exists, folder missing
    │                                         or not writable, bad extension
    ├── ResourceError                exit 7   this machine lacks what the job needs (free disk)
    ├── FFmpegNotFoundError          exit 8   no working ffmpeg binary
    ├── EncodeError                  exit 9   ffmpeg failed, or the result failed verification
    ├── IntentError                  exit 10  an instruction that was not understood or contradicts
    │                                         itself
    ├── ProfileError                 exit 11  a malformed profile, an unknown profile or key
    ├── CloudError                   exit 12  the render service refused or failed (subclasses in
    │                                         ``hybrid.cloud``)
    └── BatchError                   exit 20  some files of a batch failed, the others succeeded;
                                     exit 21  every file failed, for different reasons (all for the
                                              same one: that reason's code)

    Interrupted                      exit 130 Ctrl-C or SIGTERM; raised by the CLI's signal handler
"""

from __future__ import annotations


class HybridError(Exception):
    """Base of every error hybrid raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(HybridError):
    exit_code = 3


class MediaError(HybridError):
    exit_code = 4


class PlanError(HybridError):
    exit_code = 5


class OutputError(HybridError):
    exit_code = 6


class ResourceError(HybridError):
    exit_code = 7


class FFmpegNotFoundError(HybridError):
    exit_code = 8


class EncodeError(HybridError):
    """ffmpeg failed or its output failed verification.

    ``stderr`` keeps ffmpeg's whole error output for debugging; the message carries only the last
    meaningful lines.
    """

    exit_code = 9

    def __init__(
        self, message: str, *, stderr: str = "", argv: list[str] | None = None, returncode: int | None = None
    ) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.argv = argv or []
        # Negative: ffmpeg was killed by that signal (the OOM killer's SIGKILL among them), which says
        # the machine ran short rather than the input being bad.
        self.returncode = returncode


class IntentError(HybridError):
    exit_code = 10


class ProfileError(HybridError):
    exit_code = 11


class CloudError(HybridError):
    exit_code = 12


class BatchError(HybridError):
    """Files of a batch failed; each one's own error is in the batch report. The exit code depends
    on the batch (``hybrid.batch.BatchReport.exit_code``), so it is set per instance."""

    exit_code = 20

    def __init__(self, message: str, exit_code: int = 20) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(HybridError):
    exit_code = 130

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "internal error (a bug: please report it)",
    2: "usage error (bad option or argument)",
    3: "input file missing, a directory, or unreadable",
    4: "input is not a usable video (empty, corrupt, truncated, not media, image, audio only)",
    5: "the request cannot be met (impossible target, conflicting settings)",
    6: "output problem (same as input, exists, folder missing or not writable)",
    7: "not enough resources (free disk)",
    8: "ffmpeg missing or broken",
    9: "encode failed or its result failed verification",
    10: "instruction not understood",
    11: "profile error",
    12: "cloud error",
    20: "batch: some files failed, the others succeeded (the report says which and why)",
    21: "batch: every file failed, for different reasons (for one same reason: that reason's code)",
    130: "interrupted (Ctrl-C or SIGTERM); nothing left behind",
}

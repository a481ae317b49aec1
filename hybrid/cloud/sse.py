"""A sans-I/O Server-Sent Events decoder, and the agent events the render service sends through it.

Why our own and not httpx-sse: the decoder is ~60 lines, it is tested on plain strings, it has to
surface empty ``data:`` lines (the service's keep-alives) that a higher-level reader may swallow,
and it keeps the dependency list short. Framing follows the WHATWG EventSource parsing rules:
lines end in CRLF, LF or CR; ``:`` starts a comment; a blank line dispatches the event; ``data``
lines join with newlines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry_ms: int | None = None


class SSEDecoder:
    """Feed text as it arrives (any chunking); get whole events back."""

    def __init__(self) -> None:
        self._buffer = ""
        self._data: list[str] = []
        self._has_data = False
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self.comments = 0  # ": ping" lines seen, a liveness signal only

    def feed(self, chunk: str) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            end, width = cut
            # A lone CR at the very end may be the first half of a CRLF still in flight.
            if self._buffer[end] == "\r" and end + 1 == len(self._buffer):
                break
            line = self._buffer[:end]
            self._buffer = self._buffer[end + width :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """The stream ended: a final event without its blank line is discarded, as the spec says."""
        self._buffer = ""
        self._data, self._has_data = [], False
        return []

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
        elif field == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_data:
            self._event = ""
            return None
        event = SSEEvent(
            data="\n".join(self._data), event=self._event or "message", id=self._id, retry_ms=self._retry
        )
        self._data, self._has_data, self._event = [], False, ""
        return event


def _line_end(text: str) -> tuple[int, int] | None:
    positions = [p for p in (text.find("\r"), text.find("\n")) if p >= 0]
    if not positions:
        return None
    end = min(positions)
    width = 2 if text[end] == "\r" and text[end + 1 : end + 2] == "\n" else 1
    return end, width


# -- what the agent says -------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentText:
    text: str


@dataclass(frozen=True)
class AgentHeartbeat:
    """A keep-alive: the job is still running."""


@dataclass(frozen=True)
class AgentTool:
    """A tool call or result: internal to the agent, logged at debug level only."""

    kind: str  # "tool_call" or "tool_result"
    name: str


@dataclass(frozen=True)
class AgentOther:
    raw: str


AgentEvent = AgentText | AgentHeartbeat | AgentTool | AgentOther

TEMPORARY_ISSUE = "i encountered a temporary issue"


def parse_agent_event(data: str) -> AgentEvent:
    """One ``data:`` payload -> an agent event, from either documented shape.

    The vendor's shape is ``{"type": "text"|"tool_call"|"tool_result"|"heartbeat", ...}``; the
    Google ADK shape that ``/run_sse`` mirrors is ``{"content": {"parts": [{"text": ...}]}, ...}``
    with ``functionCall``/``functionResponse`` parts for tools. An empty payload is a keep-alive.
    """
    if not data.strip():
        return AgentHeartbeat()
    try:
        body: Any = json.loads(data)
    except ValueError:
        return AgentOther(data)
    if not isinstance(body, dict):
        return AgentOther(data)
    kind = body.get("type")
    if kind == "heartbeat":
        return AgentHeartbeat()
    if kind == "text":
        return AgentText(str(body.get("content") or body.get("text") or ""))
    if kind in ("tool_call", "tool_result"):
        return AgentTool(kind=str(kind), name=str(body.get("name", "")))
    content = body.get("content")
    if isinstance(content, dict) and isinstance(content.get("parts"), list):
        texts: list[str] = []
        for part in content["parts"]:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part.get("functionCall"), dict):
                return AgentTool(kind="tool_call", name=str(part["functionCall"].get("name", "")))
            elif isinstance(part.get("functionResponse"), dict):
                return AgentTool(kind="tool_result", name=str(part["functionResponse"].get("name", "")))
        if texts:
            return AgentText("".join(texts))
        return AgentHeartbeat()
    return AgentOther(data)


def is_ignorable_text(text: str, seen_text_before: bool) -> bool:
    """A trailing "I encountered a temporary issue" after normal output is documented noise."""
    return seen_text_before and TEMPORARY_ISSUE in text.lower()

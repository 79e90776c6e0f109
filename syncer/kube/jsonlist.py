"""A Kubernetes list response split into its items as the bytes arrive. Pure: no I/O.

A list page holds up to 500 objects, and a Secret may hold 1 MiB: parsing a page whole would keep
hundreds of megabytes alive at once (the bytes, then the parsed strings). `Splitter` is fed the
response in chunks and hands out one item's JSON at a time, so at most one object and one chunk
are held; the rest of the document (`kind`, `metadata` with `continue` and `resourceVersion`) is
kept as a small skeleton with `"items": []`.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_ITEM_BYTES = 16 * 1024 * 1024  # far above the apiserver's own object limit (~1.5 MiB)
_SPECIAL = re.compile(rb'["{}\[\]]')
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*')  # up to the closing quote (or a lone \\)


class TooLarge(ValueError):
    """One object (or the skeleton) of the response is beyond any size the apiserver sends."""


class Splitter:
    """Feed chunks with `feed` (each call returns the items completed by it); `skeleton()` at
    the end is the document without its items."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # scanned up to here
        self._mark = 0  # bytes before this are accounted for (in the skeleton or dropped)
        self._depth = 0
        self._in_items = False
        self._item_start: int | None = None
        self._last_key = b""
        self._skeleton = bytearray()
        self._string_start: int | None = None  # a string that goes on in the next chunk

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        out: list[bytes] = []
        buf = self._buf
        while True:
            if self._string_start is not None:  # resume inside a string where we stopped
                body = _STRING_BODY.match(buf, self._pos)  # matches, if only the empty string
                end = body.end() if body is not None else self._pos
                if end >= len(buf) or buf[end] != 0x22:  # goes on in the next chunk
                    self._pos = end
                    break
                if self._depth == 1:
                    self._last_key = bytes(buf[self._string_start:end + 1])
                self._string_start = None
                self._pos = end + 1
                continue
            found = _SPECIAL.search(buf, self._pos)
            if found is None:
                self._pos = len(buf)
                break
            i = found.start()
            char = buf[i]
            if char == 0x22:  # '"': scan its body (resumed above)
                self._string_start = i
                self._pos = i + 1
                continue
            self._pos = i + 1
            if char in (0x7B, 0x5B):  # '{' '['
                if self._in_items and self._depth == 2:
                    self._item_start = i
                self._depth += 1
                if self._depth == 2 and char == 0x5B and self._last_key == b'"items"':
                    self._in_items = True
                    self._skeleton += buf[self._mark:i + 1]
                    self._mark = i + 1
                continue
            self._depth -= 1
            if self._in_items and self._depth == 2 and self._item_start is not None:
                out.append(bytes(buf[self._item_start:i + 1]))
                self._item_start = None
                self._mark = i + 1
            elif self._in_items and self._depth == 1:
                self._in_items = False
                self._mark = i
        self._trim()
        return out

    def _trim(self) -> None:
        """Drop what is accounted for, so the buffer holds at most the current object."""
        upto = self._pos if self._string_start is None else self._string_start
        if not self._in_items:
            self._skeleton += self._buf[self._mark:upto]
            cut = upto
        else:
            cut = self._item_start if self._item_start is not None else upto
        del self._buf[:cut]
        self._pos -= cut
        self._mark = max(0, self._mark - cut) if self._in_items else 0
        if self._item_start is not None:
            self._item_start -= cut
        if self._string_start is not None:
            self._string_start -= cut
        if len(self._buf) > MAX_ITEM_BYTES or len(self._skeleton) > MAX_ITEM_BYTES:
            raise TooLarge("an object in the list response is too large")

    def skeleton(self) -> dict[str, Any]:
        """The document without its items (after the last chunk)."""
        self._skeleton += self._buf[self._mark:]
        doc = json.loads(bytes(self._skeleton) or b"{}")
        return doc if isinstance(doc, dict) else {}

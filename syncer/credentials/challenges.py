"""The challenges of a `WWW-Authenticate` header (RFC 7235), as the registry login check reads
them: scheme and parameters, names in lower case. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a `WWW-Authenticate` header: scheme and params, names in lower case."""

    scheme: str
    params: Mapping[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a `WWW-Authenticate` value (RFC 7235; several may be comma-joined)."""
    found: list[tuple[str, dict[str, str]]] = []
    pos, n = 0, len(header)
    current: dict[str, str] | None = None
    while pos < n:
        while pos < n and header[pos] in " \t,":
            pos += 1
        start = pos
        while pos < n and header[pos] not in " \t,=\"":
            pos += 1
        word = header[start:pos]
        if not word:
            pos += 1
            continue
        probe = pos
        while probe < n and header[probe] in " \t":
            probe += 1
        if probe < n and header[probe] == "=" and current is not None:
            pos = probe + 1
            while pos < n and header[pos] in " \t":
                pos += 1
            value, pos = _param_value(header, pos)
            current[word.lower()] = value
            continue
        if probe < n and header[probe] == "=":  # token68 without a scheme: skip it
            pos = probe + 1
            continue
        current = {}
        found.append((word.lower(), current))
    return [Challenge(scheme=scheme, params=dict(params)) for scheme, params in found]


def _param_value(header: str, pos: int) -> tuple[str, int]:
    n = len(header)
    if pos < n and header[pos] == '"':
        pos += 1
        out: list[str] = []
        while pos < n and header[pos] != '"':
            if header[pos] == "\\" and pos + 1 < n:
                pos += 1
            out.append(header[pos])
            pos += 1
        return "".join(out), pos + 1
    start = pos
    while pos < n and header[pos] not in " \t,":
        pos += 1
    return header[start:pos], pos

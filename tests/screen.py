"""What a terminal would show after a stream of output: a tiny emulator of the few controls a
progress bar uses (carriage return, newline, backspace, erase-line, cursor up), every other
escape sequence stripped. Used to assert that the live display leaves nothing behind."""

from __future__ import annotations

import re

_CSI = re.compile(r"\x1b\[([0-9;?]*)([@-~])")
_OTHER_ESC = re.compile(r"\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def strip_ansi(text: str) -> str:
    return _OTHER_ESC.sub("", _CSI.sub("", text))


def render(raw: str) -> list[str]:
    """The lines left on the screen (trailing blanks and blank last lines dropped)."""
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    text = _OTHER_ESC.sub("", raw)
    while i < len(text):
        ch = text[i]
        match = _CSI.match(text, i) if ch == "\x1b" else None
        if match is not None:
            arg, op = match.groups()
            n = int(arg) if arg.isdigit() else 1
            if op == "A":
                row = max(0, row - n)
            elif op == "B":
                row += n
            elif op == "K":  # erase in line: 0 to the end, 1 to the start, 2 all of it
                line = lines[row] if row < len(lines) else []
                if arg in ("", "0"):
                    del line[col:]
                elif arg == "1":
                    line[:col] = [" "] * min(col, len(line))
                else:
                    line.clear()
            elif op == "G":
                col = max(0, n - 1)
            i = match.end()
            continue
        if ch == "\n":
            row, col = row + 1, 0
        elif ch == "\r":
            col = 0
        elif ch == "\b":
            col = max(0, col - 1)
        elif ch >= " " or ch == "\t":
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            while len(line) < col:
                line.append(" ")
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        while len(lines) <= row:
            lines.append([])
        i += 1
    out = ["".join(line).rstrip() for line in lines]
    while out and not out[-1]:
        out.pop()
    return out

"""Text from outside (file names, cell text) made safe to show: on a terminal, in run.json, in any output."""

from __future__ import annotations

import unicodedata

# control characters (ESC, BEL, CR, LF...), format characters (bidi overrides, zero-width), lone surrogates (the
# bytes of a file name that is not UTF-8, as Python keeps them) and the line and paragraph separators
_HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def printable(text: str) -> str:
    """`text` with every character that could act on a terminal or hide itself shown as an escape: \\x1b, \\u202e;
    a byte a file name could not decode shows as \\xff. Idempotent."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if unicodedata.category(ch) not in _HIDDEN:
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # surrogateescape: the undecodable byte itself
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)

"""Names and text people type, and how the CLI prints strings it did not write.

A name ends up on an admin's terminal and an official's screen: control
characters are refused on input (issue 12, item 6) and escaped on output.
"""

from __future__ import annotations

import re
import unicodedata

from netmgr.errors import BadValue

MAX_SPOKEN = 5000  # characters of a text to speak: a program's, a broadcast's, a TTS request's

# Characters that change how a terminal or a page shows the text around them: the C0 and C1
# controls (ESC starts every terminal escape, BEL ends an OSC title), DEL, and the Unicode
# bidirectional embeddings, overrides and isolates (U+202E shows "gpj.exe" as "exe.jpg") and
# the line/paragraph separators.
_BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\u061c"
# ... and lone UTF-16 surrogates (JSON can carry them; no database or terminal can show them).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f" + _BIDI + "\ud800-\udfff]")
_UNSAFE_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f" + _BIDI + "\ud800-\udfff]")  # keeps \t, \n


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X}" + (f" {unicodedata.name(ch)}" if unicodedata.name(ch, "") else "")


def check_name(value: str, what: str = "name") -> str:
    """``value`` NFC-normalised and stripped; ValueError if it holds a control character."""
    value = unicodedata.normalize("NFC", value).strip()
    m = _UNSAFE.search(value)
    if m:
        raise ValueError(f"{what} contains the control character {_describe(m.group())}; "
                         "names may hold letters (with diacritics), digits, spaces and punctuation")
    return value


def check_text(value: str, what: str = "text") -> str:
    """Like :func:`check_name` for multi-line text (announcements): tabs and newlines allowed."""
    value = unicodedata.normalize("NFC", value)
    m = _UNSAFE_IN_TEXT.search(value)
    if m:
        raise ValueError(f"{what} contains the control character {_describe(m.group())}")
    return value


def spoken_text(value: object, what: str = "text to speak") -> str:
    """Text that will be spoken (espeak-ng): a string, NFC, no control characters, not blank, at
    most MAX_SPOKEN characters (counted after NFC: "ệ" typed as 3 code points counts once);
    BadValue (a ValueError, so pydantic reports it too) saying what is wrong and what to do."""
    if not isinstance(value, str):
        raise BadValue(f"{what} must be a string")
    try:
        t = check_text(value, what).strip()
    except ValueError as e:
        raise BadValue(str(e)) from None
    if not t:
        raise BadValue(f"{what} is empty; give the words to broadcast")
    if len(t) > MAX_SPOKEN:
        raise BadValue(f"{what} has {len(t):,} characters; the limit is {MAX_SPOKEN:,}: shorten it "
                       "or split it into several broadcasts")
    return t


def safe_text(value: object, *, keep_newlines: bool = True, json_escapes: bool = False) -> str:
    """``value`` as a string fit for a terminal: every control or bidi character shown as an
    escape (``\\x1b``, ``\\u202e``; ``\\u001b`` with ``json_escapes``, which keeps JSON valid)
    instead of acting on the terminal."""
    pattern = _UNSAFE_IN_TEXT if keep_newlines else _UNSAFE

    def esc(m: re.Match[str]) -> str:
        c = ord(m.group())
        return f"\\u{c:04x}" if json_escapes or c >= 0x100 else f"\\x{c:02x}"

    return pattern.sub(esc, str(value))

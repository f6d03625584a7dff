"""The one rule for free text a person or a client gives the registry (names, references, reasons).

The same function checks the API's schemas, the console's forms and the command line, so that text the
API refuses cannot reach the hash-chained audit trail another way. Text is stripped and put in Unicode
NFC (one spelling of "é", so names stay unique as people read them); it may not hold:

- control characters (C0, DEL, C1: NUL, escape sequences that drive terminals, CR/LF that split log
  lines and CSV rows), nor the Unicode line and paragraph separators;
- bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), which make text
  display in another order than it is stored ("Trojan Source");
- lone surrogates (not text; PostgreSQL refuses them).
"""

from __future__ import annotations

import re
import unicodedata

from registry.errors import InvalidInput

# Ranges of code points refused anywhere in text, inclusive. PATTERN below is built from them, so that
# the OpenAPI document states the same rule the function applies.
FORBIDDEN_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x1F),  # C0 controls, including TAB, CR, LF and ESC
    (0x7F, 0x9F),  # DEL and the C1 controls (CSI, NEL, ...)
    (0x2028, 0x2029),  # line and paragraph separators
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2066, 0x2069),  # bidi isolates
    (0xD800, 0xDFFF),  # surrogates: never text on their own
)

# A JSON-schema pattern (ECMA 262) for documentation and for clients; the function is what decides. (JSON
# text cannot carry a lone surrogate as a character, so the pattern leaves that range out.)
PATTERN = "^[^" + "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in FORBIDDEN_RANGES if hi < 0xD800) + "]*$"


# What a form says when text breaks the rule (a fixed text, so that the console can translate it).
REFUSED_MESSAGE = "The text must not contain control or bidirectional-override characters."


class BadText(ValueError):
    """Text that breaks the rule. A ValueError, so that pydantic reports it as a validation error."""


# The ranges as one character class: `clean` runs on every reference of a settlement batch, and a search in
# C is many times faster than testing each character against the ranges in Python (a test holds the class
# to the ranges on every code point).
_FORBIDDEN_RE = re.compile(
    "[" + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in FORBIDDEN_RANGES) + "]"
)


def clean(value: str, *, max_length: int, min_length: int = 1) -> str:
    """The text as the registry keeps it (stripped, NFC), or BadText saying what is wrong with it."""
    text = value.strip()  # surrounding whitespace (a pasted line break) is dropped, not refused
    found = _FORBIDDEN_RE.search(text)
    if found is not None:
        bad = found.group()
        raise BadText(
            f"must not contain control or bidirectional-override characters (found U+{ord(bad):04X})"
        )
    text = unicodedata.normalize("NFC", text)
    if len(text) < min_length:
        raise BadText("must not be empty" if min_length == 1 else f"at least {min_length} characters")
    if len(text) > max_length:
        raise BadText(f"at most {max_length} characters")
    return text


def checked(value: str, *, field: str, max_length: int) -> str:
    """`clean`, refusing with InvalidInput that names `field` (the command line, services)."""
    try:
        return clean(value, max_length=max_length)
    except BadText as bad:
        raise InvalidInput(field, f"{field} {bad}") from bad


# The lengths of the kinds of text the registry keeps, for every door text comes in by.
NAME_MAX = 200  # a party's or a person's name
SHORT_MAX = 64  # a code, a reference, a unit
REASON_MAX = 1000  # why an instruction was rejected, declined or retired

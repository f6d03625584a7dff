"""HTML to PDF with WeasyPrint, for certificates and reports alike.

What is the same for every document is made once per process and shared: the font configuration (a fresh
one per document loads the CJK fonts again and the process grows by about 2 MB a document), and a
stylesheet a caller parses once (`stylesheet`). bench/certificate_bench.py measures both.

Font subsets in one pass: WeasyPrint 70 subsets each font with HarfBuzz twice — first keeping the used
glyphs at their original ids, then again to drop the empty glyphs after the last one used and the hints.
With the glyph ids of Noto Sans CJK (a Chinese name's glyphs sit near the end of its 65,535) the second
pass keeps almost every glyph of the first and costs twice as much; asking the first pass to drop the
hints too gives the same font, byte for byte, for a third of the work (~0.1 s a certificate). And the
font file each document copies out of HarfBuzz whole (20 MB for a CJK collection, before subsetting it)
is copied once per process. Only for the WeasyPrint this was checked against (`_CHECKED_WEASYPRINT`);
any other version does both as it always did.

Streams compressed at zlib's level 1, not pydyf's 9: the font subsets are mostly glyph ids kept in place,
on which level 9 searches long for little (a certificate 2.5% larger, ~25 ms less). Only for the pydyf
this was checked against (`_CHECKED_PYDYF`)."""

from __future__ import annotations

import logging
import threading
import zlib
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weasyprint import CSS

logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # a line per step of every document

_fonts: Any = None
_lock = threading.Lock()  # WeasyPrint's font machinery is not known to be thread-safe
_init_lock = threading.Lock()
_CHECKED_WEASYPRINT = "70.0"
_CHECKED_PYDYF = "0.13.0"
FLATE_LEVEL = 1


def write_pdf(html: str, stylesheet: CSS | None = None) -> bytes:
    from weasyprint import HTML

    with _lock:
        pdf: bytes = HTML(string=html).write_pdf(
            font_config=font_config(), stylesheets=None if stylesheet is None else [stylesheet]
        )
    return pdf


def font_config() -> Any:
    """The process's one font configuration (and, the first time, the changes to WeasyPrint above)."""
    from weasyprint.text.fonts import FontConfiguration

    global _fonts  # noqa: PLW0603 (a per-process cache, see above)
    with _init_lock:
        if _fonts is None:
            _subset_in_one_pass()
            _compress_faster()
            _fonts = FontConfiguration()
    return _fonts


def stylesheet(css: str) -> CSS:
    """`css` parsed once, for `write_pdf(…, stylesheet)`: its selectors are compiled once, not per document.
    Its rules count as the user's, below any <style> of the document itself."""
    from weasyprint import CSS

    return CSS(string=css, font_config=font_config())


def _subset_in_one_pass() -> None:
    import weasyprint
    from weasyprint.pdf import fonts

    if weasyprint.__version__ != _CHECKED_WEASYPRINT or getattr(fonts.Font, "_one_pass", False):
        return
    from weasyprint.text.ffi import ffi, harfbuzz, harfbuzz_subset

    whole_face = fonts.get_hb_object_data
    files: dict[tuple[int, int], tuple[Any, bytes]] = {}
    drop = sorted(
        harfbuzz.hb_tag_from_string(tag, -1)
        for tag in (
            b"BASE",
            b"DSIG",
            b"EBDT",
            b"EBLC",
            b"EBSC",
            b"GPOS",
            b"GSUB",
            b"JSTF",
            b"LTSH",
            b"PCLT",
            b"SVG ",
        )
    )  # the tables WeasyPrint drops

    def font_file(hb_object: Any, ot_color: str | None = None, glyph: int | None = None) -> Any:
        """What Font.__init__ asks for: a system font's whole file, the same bytes each time."""
        if ot_color is not None:
            return whole_face(hb_object, ot_color, glyph)
        blob = harfbuzz.hb_face_reference_blob(hb_object)
        length = ffi.new("unsigned int *")
        key = (int(ffi.cast("uintptr_t", harfbuzz.hb_blob_get_data(blob, length))), length[0])
        if key in files:
            harfbuzz.hb_blob_destroy(blob)
            return files[key][1]
        data: bytes = whole_face(hb_object)
        files[key] = (blob, data)  # holding the blob keeps its memory, so the key, from being reused
        return data

    def harfbuzz_subset_once(font: Any, to_unicode: dict[int, str], hinting: bool) -> None:
        """WeasyPrint 70's Font._harfbuzz_subset with both passes' flags in one."""
        hb_input = ffi.gc(
            harfbuzz_subset.hb_subset_input_create_or_fail(), harfbuzz_subset.hb_subset_input_destroy
        )
        glyphs = harfbuzz_subset.hb_subset_input_glyph_set(hb_input)
        gids = ffi.new(f"hb_codepoint_t[{len(to_unicode)}]", sorted(to_unicode))
        harfbuzz.hb_set_add_sorted_array(glyphs, gids, len(to_unicode))
        flags = (
            harfbuzz_subset.HB_SUBSET_FLAGS_RETAIN_GIDS
            | harfbuzz_subset.HB_SUBSET_FLAGS_PASSTHROUGH_UNRECOGNIZED
            | harfbuzz_subset.HB_SUBSET_FLAGS_DESUBROUTINIZE
        )
        if not hinting:
            flags |= harfbuzz_subset.HB_SUBSET_FLAGS_NO_HINTING
        if font.missing:
            flags |= harfbuzz_subset.HB_SUBSET_FLAGS_NOTDEF_OUTLINE
        harfbuzz_subset.hb_subset_input_set_flags(hb_input, flags)
        tables = harfbuzz_subset.hb_subset_input_set(hb_input, harfbuzz_subset.HB_SUBSET_SETS_DROP_TABLE_TAG)
        harfbuzz.hb_set_add_sorted_array(tables, ffi.new(f"hb_codepoint_t[{len(drop)}]", drop), len(drop))
        face = harfbuzz_subset.hb_subset_or_fail(font.hb_face, hb_input)
        if face != ffi.NULL:
            face = ffi.gc(face, harfbuzz.hb_face_destroy)
            if content := whole_face(face):
                font.file_content = content
                return
        fonts.LOGGER.warning('Unable to subset "%s" with HarfBuzz', font.family)

    fonts.get_hb_object_data = font_file
    fonts.Font._harfbuzz_subset = harfbuzz_subset_once
    fonts.Font._one_pass = True


class _FasterZlib:
    """pydyf's `zlib`, compressing streams at FLATE_LEVEL whatever level it asks for."""

    compress = staticmethod(zlib.compress)

    @staticmethod
    def compressobj(level: int = -1) -> Any:
        return zlib.compressobj(FLATE_LEVEL)


def _compress_faster() -> None:
    import pydyf  # type: ignore[import-untyped]

    if pydyf.__version__ == _CHECKED_PYDYF:
        pydyf.zlib = _FasterZlib


# How figures print on documents and pages.
def money(value: str | Decimal | None) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


def percent(value: str | Decimal | None) -> str:
    return "—" if value is None else f"{Decimal(value) * 100:.2f}%"


def units(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"

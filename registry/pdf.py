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

Also only for that WeasyPrint: the computed styles of a document that asks for it (`share_styles`: the
certificate) are kept for the next one, and a style's line height and baseline are kept on the style (see
`_share_computed_styles`, `_strut_once_a_style`; the same PDF, byte for byte; docs/benchmarks.md).

Streams compressed at zlib's level 1, not pydyf's 9: the font subsets are mostly glyph ids kept in place,
on which level 9 searches long for little (a certificate 2.5% larger, ~25 ms less). Only for the pydyf
this was checked against (`_CHECKED_PYDYF`)."""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator
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


def write_pdf(html: str, stylesheet: CSS | None = None, *, share_styles: bool = False) -> bytes:
    """`share_styles`: the elements' computed styles are kept for the next documents (see
    `_share_computed_styles`); for a template rendered again and again whose styles do not depend on its
    data (the certificate), not for one-off documents."""
    from weasyprint import HTML

    global _sharing  # noqa: PLW0603 (read by the patched StyleFor, under _lock)
    with _lock:
        fonts = font_config()
        _sharing = share_styles
        try:
            pdf: bytes = HTML(string=html).write_pdf(
                font_config=fonts, stylesheets=None if stylesheet is None else [stylesheet]
            )
        finally:
            _sharing = False
    return pdf


def font_config() -> Any:
    """The process's one font configuration (and, the first time, the changes to WeasyPrint above)."""
    from weasyprint.text.fonts import FontConfiguration

    global _fonts  # noqa: PLW0603 (a per-process cache, see above)
    with _init_lock:
        if _fonts is None:
            _subset_in_one_pass()
            _compress_faster()
            _share_computed_styles()
            _strut_once_a_style()
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


_sharing = False
_shared_styles: dict[Any, Any] = {}
# A bound, should a caller's markup or stylesheet vary: a certificate keeps ~900 (its ~150 elements and
# the pseudo-elements WeasyPrint's own stylesheet gives each: ::marker, ::footnote-call, …).
SHARED_STYLES_MAX = 2048


class _Same:
    """A value that cannot be hashed (a list inside a `content`), compared as the same object: the key
    holds it, so no later object can have its id."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value


def _by_value(cascaded: dict[str, tuple[Any, Any]]) -> Iterator[tuple[str, tuple[Any, Any]]]:
    for name, (value, weight) in cascaded.items():
        try:
            hash(value)
        except TypeError:
            yield name, (_Same(value), weight)
        else:
            yield name, (value, weight)


def _share_computed_styles() -> None:
    """Computed styles kept from one document to the next. WeasyPrint 70 already shares one computed style
    between the elements of a document with the same parent style and the same matched rules; here the
    key is by value (the parent's key, the cascaded declarations, the base URL), so that it holds across
    documents, and a style computed (lazily, during layout) for one certificate is ready for the next. The
    cascaded values are the parsed declarations of the process's stylesheets, or values of attributes
    (`lang`, `style`); the key holds them, so an identity-compared value cannot be confused with a later
    one. Only for the elements and pseudo-elements of documents that ask for it (`share_styles`); pages and
    their margin boxes (the certificate's footer names it) are computed as always. A computed style does not
    depend on its element otherwise: `attr()` and counters stay symbolic until the boxes are built."""
    from xml.etree.ElementTree import Element

    import weasyprint
    from weasyprint.css import StyleFor

    if weasyprint.__version__ != _CHECKED_WEASYPRINT or getattr(StyleFor, "_shared", False):
        return
    compute = StyleFor.set_computed_styles

    def set_computed_styles(
        self: Any,
        element: Any,
        parent: Any,
        root: Any = None,
        pseudo_type: str | None = None,
        base_url: str | None = None,
        target_collector: Any = None,
    ) -> None:
        computed_styles = self.get_computed_styles()
        parent_key = None if parent is None else getattr(computed_styles[parent, None], "shared_key", None)
        if (
            not _sharing
            or not isinstance(element, Element)  # pages and their margin boxes
            or (parent is not None and parent_key is None)  # the parent's style was not shared
        ):
            compute(self, element, parent, root, pseudo_type, base_url, target_collector)
            return
        cascaded = self.get_cascaded_styles().get((element, pseudo_type), {})
        try:
            declared = frozenset(cascaded.items())
        except TypeError:  # a list among the values
            declared = frozenset(_by_value(cascaded))
        key = (parent_key, pseudo_type, base_url, declared)
        style = _shared_styles.get(key)
        if style is None:
            compute(self, element, parent, root, pseudo_type, base_url, target_collector)
            style = computed_styles[element, pseudo_type]
            if len(_shared_styles) >= SHARED_STYLES_MAX:
                _shared_styles.clear()
            style.shared_key = key
            _shared_styles[key] = style
        else:
            computed_styles[element, pseudo_type] = style
            if target_collector and style["anchor"]:
                target_collector.collect_anchor(style["anchor"])
        return None

    StyleFor.set_computed_styles = set_computed_styles
    StyleFor._shared = True


def _strut_once_a_style() -> None:
    """A style's line height and baseline (`strut`) kept on the style. WeasyPrint asks for them for every
    line and inline box, and finds them in a cache by a key it builds as a string from 14 of the style's
    values each time (~15 µs, some 260 times a certificate); a style's font values do not change once
    computed (WeasyPrint copies a style before changing one)."""
    import weasyprint
    from weasyprint.css import computed_values, units
    from weasyprint.layout import inline
    from weasyprint.text import line_break

    if weasyprint.__version__ != _CHECKED_WEASYPRINT or getattr(line_break, "_strut_kept", False):
        return
    strut = line_break.strut

    def strut_kept(style: Any) -> tuple[float, float]:
        kept: tuple[float, float] | None = style.__dict__.get("strut")
        if kept is None:
            kept = style.strut = strut(style)
        return kept

    for module in (line_break, inline, units, computed_values):
        module.strut = strut_kept  # each imported the function by name
    line_break._strut_kept = True


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

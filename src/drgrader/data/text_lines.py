"""Text files that are UTF-8 but for a few lines, as old spreadsheets leave them: one home for
reading them line by line, used by predict's CSV lists (:mod:`.inputs`) and the label files
(:mod:`.label_files`, the Messidor-2 exam pairs)."""

from __future__ import annotations

import codecs


def legacy_text(line: bytes) -> str:
    """A line that is not UTF-8, as an old spreadsheet wrote it: Windows-1252 (Excel's "ANSI",
    Latin-1 with ’ “ ” € in 0x80-0x9F), else Latin-1 (cp1252 leaves five bytes undefined)."""
    try:
        return line.decode("cp1252")
    except UnicodeDecodeError:
        return line.decode("latin-1")


# Byte-order marks of the wide encodings (UTF-32 first: its little-endian mark begins with UTF-16's).
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
              (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
DOS_END_OF_FILE = "\x1a"  # Ctrl-Z: old DOS and Windows tools end a text file with it


def wide_encoding(data: bytes) -> str | None:
    """The codec of a UTF-16 or UTF-32 file (Excel's "Unicode Text", Notepad's "Unicode"): by its
    byte-order mark, else by a NUL in every other byte of its start (ASCII text in UTF-16 without
    a mark); None for a file of 8-bit text."""
    for bom, codec in _WIDE_BOMS:
        if data.startswith(bom):
            return codec
    head = data[:512] if len(data) % 2 == 0 else b""
    if len(head) >= 4:
        if not any(head[1::2]) and all(head[0::2]):
            return "utf-16-le"
        if not any(head[0::2]) and all(head[1::2]):
            return "utf-16-be"
    return None


def decode_lines(data: bytes) -> tuple[str, list[int]]:
    """The text of ``data`` and the 1-based numbers of its lines that are not UTF-8.

    Each such line is read with :func:`legacy_text`, the others as UTF-8: decoding the whole
    file as Latin-1 for one stray line turned every UTF-8 name into mojibake (``José`` ->
    ``JosÃ©``) and Excel's ’ into an invisible control character. Lines are physical lines
    (a quoted CSV cell may span two); the byte-order mark Excel writes is dropped. A UTF-16 or
    UTF-32 file is read whole in its encoding (before: its NULs read as Latin-1, a misleading
    refusal). A DOS end-of-file byte (Ctrl-Z) at the very end is the file's end, not text (before:
    a phantom last row); one elsewhere stays in its line for the reader to refuse."""
    wide = wide_encoding(data)
    if wide is not None:
        try:
            return data.decode(wide).removeprefix("\ufeff").removesuffix(DOS_END_OF_FILE), []
        except UnicodeDecodeError:
            pass  # not that encoding after all: read as 8-bit lines below (their NULs refused by the reader)
    lines, legacy = [], []
    for number, line in enumerate(data.removeprefix(codecs.BOM_UTF8).split(b"\n"), start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(legacy_text(line))
            legacy.append(number)
    return "\n".join(lines).removesuffix(DOS_END_OF_FILE), legacy


def legacy_warning(shown: str, legacy: list[int]) -> str:
    """The one warning for a file with lines that are not UTF-8, naming (the first five of) them."""
    listed = ", ".join(map(str, legacy[:5])) + (" ..." if len(legacy) > 5 else "")
    return f"{shown}: {len(legacy)} line(s) are not valid UTF-8 (line {listed}): read as Windows-1252 / Latin-1"

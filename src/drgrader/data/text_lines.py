"""Text files that are UTF-8 but for a few lines, as old spreadsheets leave them: one home for
reading them line by line, used by predict's CSV lists (:mod:`.inputs`) and the label files
(:mod:`.label_files`, the Messidor-2 exam pairs)."""

from __future__ import annotations


def legacy_text(line: bytes) -> str:
    """A line that is not UTF-8, as an old spreadsheet wrote it: Windows-1252 (Excel's "ANSI",
    Latin-1 with ’ “ ” € in 0x80-0x9F), else Latin-1 (cp1252 leaves five bytes undefined)."""
    try:
        return line.decode("cp1252")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def decode_lines(data: bytes) -> tuple[str, list[int]]:
    """The text of ``data`` and the 1-based numbers of its lines that are not UTF-8.

    Each such line is read with :func:`legacy_text`, the others as UTF-8: decoding the whole
    file as Latin-1 for one stray line turned every UTF-8 name into mojibake (``José`` ->
    ``JosÃ©``) and Excel's ’ into an invisible control character. Lines are physical lines
    (a quoted CSV cell may span two); the byte-order mark Excel writes is dropped."""
    lines, legacy = [], []
    for number, line in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(legacy_text(line))
            legacy.append(number)
    return "\n".join(lines), legacy


def legacy_warning(shown: str, legacy: list[int]) -> str:
    """The one warning for a file with lines that are not UTF-8, naming (the first five of) them."""
    listed = ", ".join(map(str, legacy[:5])) + (" ..." if len(legacy) > 5 else "")
    return f"{shown}: {len(legacy)} line(s) are not valid UTF-8 (line {listed}): read as Windows-1252 / Latin-1"

"""Untrusted text (step names, values, task output) made safe where it is shown or used as a file name.

Names come from pipeline files, notebooks and parameters: shown raw, an escape
sequence could recolour or move a terminal's cursor and a newline could split a
one-line error in two; used raw as a file name, a long one exceeds the file
system's 255 bytes.
"""

from __future__ import annotations

import re

# ANSI sequences (CSI ... final byte; OSC/DCS/APC ... BEL or ST; two-byte ESC x), removed whole
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
                   r"|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")
# control characters but tab and newline, C1 controls, line separators and bidi overrides
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_CONTROLS}]")  # shown escaped (tab and newline are fine on a terminal)
_NOT_IN_NAMES = re.compile(f"[\t\n{_CONTROLS}]")
_NOT_IN_FILE_NAMES = re.compile(f"[\t\n/{_CONTROLS}]")
FILE_STEM_BYTES = 150  # leaves room for suffixes (".attempt12_out.ipynb", temp-file marks) under 255


def clean(text: object, newlines: bool = True) -> str:
    """Untrusted text made safe for a terminal.

    Colour codes (IPython tracebacks) are dropped; any other control character
    is shown as ``\\xNN``. ``newlines=False`` escapes newlines too.
    """
    return _escaped(_ANSI.sub("", str(text)), newlines)


def one_line(text: object) -> str:
    """Text for a one-line message: every control character shown escaped, none removed, so a
    name is shown as it is (``'a\\nb'``) and cannot break the line or reach a terminal raw."""
    return _escaped(str(text), newlines=False)


def _escaped(value: str, newlines: bool) -> str:
    value = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                         else f"\\u{ord(m.group()):04x}", value)
    return value if newlines else value.replace("\n", "\\n")


def has_control(text: str) -> bool:
    """Whether ``text`` holds a newline, tab or other control character (no name should)."""
    return _NOT_IN_NAMES.search(text) is not None


def file_stem(name: str, simple: str, limit: int = FILE_STEM_BYTES) -> str:
    """``simple`` (a file-name form of ``name``) as a safe, bounded file-name stem.

    Control characters and ``/`` become ``_``; a stem longer than ``limit``
    bytes is cut and given a short hash of the whole ``name``, so two long
    names sharing a beginning still get different files.
    """
    safe = _NOT_IN_FILE_NAMES.sub("_", simple)
    if safe == simple and len(safe.encode()) <= limit:
        return safe
    import hashlib  # only a long or odd name needs it; errors.py imports this module

    digest = hashlib.sha1(name.encode(errors="surrogatepass"), usedforsecurity=False).hexdigest()[:10]
    head = safe.encode()[: limit - len(digest) - 1].decode(errors="ignore")
    return f"{head}-{digest}"

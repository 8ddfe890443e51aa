"""Keep control characters from customers' data out of what providers and mail clients see.

Traits and event properties are rendered into SMS bodies and e-mail subjects. A NUL cuts a
body short at some carriers (and PostgreSQL cannot store it), ESC sequences drive terminals
that display logs, a U+202E RIGHT-TO-LEFT OVERRIDE makes "gpj.exe" read as "exe.jpg", and a
CR/LF in a subject is a header injection. Rendered text is cleaned where it becomes a
provider field or a header:

- bodies (SMS, WhatsApp, e-mail text and HTML): C0 controls other than tab and newline,
  DEL, C1 controls and the bidi embeddings, overrides and isolates are removed; CR LF and
  lone CR become LF, so ordinary line breaks survive;
- headers (the e-mail subject): the same, and every line break or tab becomes a space, so
  a header is always one line. Unicode line and paragraph separators too.

The bidi marks (U+200E LRM, U+200F RLM, U+061C ALM) stay: right-to-left text needs them and
they cannot reorder what follows them.
"""

from __future__ import annotations

import re

_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_BODY_REMOVED = re.compile(f"[{_CONTROLS}{_BIDI_CONTROLS}]")
_HEADER_BREAKS = re.compile("\r\n|[\r\n\t\u2028\u2029]")
_LINE_ENDINGS = re.compile("\r\n?")


def clean_body(text: str) -> str:
    """A body without hidden controls; its line breaks kept (as LF)."""
    return _BODY_REMOVED.sub("", _LINE_ENDINGS.sub("\n", text))


def clean_header(text: str) -> str:
    """One line of plain text: safe as a header value."""
    return _BODY_REMOVED.sub("", _HEADER_BREAKS.sub(" ", text))

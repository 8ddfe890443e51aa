"""Locale fallback: the most specific variant a template has, then the default locale."""

from __future__ import annotations

# Chinese is chosen by script, not region: Taiwan, Hong Kong and Macau read Traditional.
_CHINESE_SCRIPT_BY_REGION = {"TW": "Hant", "HK": "Hant", "MO": "Hant", "CN": "Hans", "SG": "Hans"}


def normalize_locale(tag: str) -> str:
    """`zh_hant_tw` → `zh-Hant-TW`, `FR-ca` → `fr-CA` (BCP 47 casing)."""
    parts = tag.replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) in (2, 3):
            out.append(part.upper())
        else:
            out.append(part)
    return "-".join(out)


def locale_chain(requested: str | None, default: str) -> list[str]:
    """Candidates from most to least specific, ending with the default locale."""
    chain: list[str] = []
    if requested:
        tag = normalize_locale(requested)
        parts = tag.split("-")
        language = parts[0]
        script = next((p for p in parts[1:] if len(p) == 4), None)
        region = next((p for p in parts[1:] if len(p) in (2, 3) and p.isalpha()), None)
        if language == "zh" and script is None and region in _CHINESE_SCRIPT_BY_REGION:
            script = _CHINESE_SCRIPT_BY_REGION[region]
        chain.append(tag)
        if script and region:
            chain.append(f"{language}-{script}-{region}")
        if script:
            chain.append(f"{language}-{script}")
        if region:
            chain.append(f"{language}-{region}")
        chain.append(language)
    chain.append(normalize_locale(default))
    return list(dict.fromkeys(chain))

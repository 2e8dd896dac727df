"""Opaque strings for clients: URL-safe base64 without padding (cursors, global ids)."""

from __future__ import annotations

import base64
import binascii


def encode_opaque(text: str) -> str:
    """`text` as an opaque, URL-safe token."""
    return base64.urlsafe_b64encode(text.encode("ascii")).rstrip(b"=").decode("ascii")


def decode_opaque(token: str, max_length: int) -> str | None:
    """The text inside a token `encode_opaque` wrote; None for anything else (re-encoding
    must give the very same token, so padded or otherwise non-canonical forms are refused)."""
    if not token or len(token) > max_length or not token.isascii():
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return text if encode_opaque(text) == token else None

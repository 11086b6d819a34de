"""What a person typed, normalised once where the web app reads it (NFKC, Unicode TR15).

A Chinese input method in full-width mode types "１３８ ００１３ ８０００" for a phone number and
"１１０１０５…" for an ID number; NFKC turns full-width digits, letters, spaces and punctuation
into their plain forms, so every form field, query-string argument and JSON body reaches the
domain code as ASCII digits and ordinary spaces. Chinese characters are unchanged. Passwords are
left exactly as typed (they are compared byte for byte with what was set, maybe from the shell).
"""
from __future__ import annotations

import unicodedata
from typing import Any

from flask import Request
from werkzeug.datastructures import ImmutableMultiDict, MultiDict


def normalise(value: Any, key: str = "") -> Any:
    """NFKC for text, recursively inside lists and JSON objects; secrets untouched."""
    if "password" in key:
        return value
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value)
    if isinstance(value, list):
        return [normalise(v, key) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v, str(k)) for k, v in value.items()}
    return value


class TypedDict(ImmutableMultiDict):
    """The form's and the query string's multi-dict, values normalised as they are stored."""

    def __init__(self, mapping=None):
        if mapping is None:
            super().__init__()
            return
        if isinstance(mapping, MultiDict):
            items = list(mapping.items(multi=True))
        elif isinstance(mapping, dict):
            items = [(k, v) for k, vs in mapping.items() for v in (vs if isinstance(vs, (list, tuple)) else [vs])]
        else:
            items = list(mapping)
        super().__init__([(k, normalise(v, k)) for k, v in items])


class TypedRequest(Request):
    parameter_storage_class = TypedDict

    def get_json(self, *args, **kwargs):
        return normalise(super().get_json(*args, **kwargs))

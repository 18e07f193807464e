from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def get_item(mapping: Any, key: str) -> Any:
    """`values|get_item:name`: None when the row has no value for that column."""
    if isinstance(mapping, dict):
        return mapping.get(key)
    return None


@register.filter
def percent(part: int | None, whole: int | None) -> int:
    if not whole:
        return 0
    return round(100 * (part or 0) / whole)

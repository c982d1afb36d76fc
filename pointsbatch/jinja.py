"""The Jinja environment over `templates/`, where every sentence a user reads in an output lives."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2


@lru_cache(maxsize=2)
def environment(autoescape: bool = True) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pointsbatch", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2.html"]) if autoescape else False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    return env


def format_number(value: Any, decimals: int = 1) -> str:
    """A score as people write it: 85, 72.5 (no trailing .0); blank for missing."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    value = round(float(value), decimals)
    return str(int(value)) if value.is_integer() else f"{value:.{decimals}f}".rstrip("0").rstrip(".")


def render_text(name: str, **context: Any) -> str:
    return environment(autoescape=name.endswith(".html")).get_template(name).render(**context)

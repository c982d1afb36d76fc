"""The Jinja environment over `templates/`, where every sentence a user reads in an output lives.

A town may keep its own copies of any of these files in a folder (`run --templates DIR`); a file found there is
used instead of the bundled one of the same name, so outputs can be restyled without touching the installation.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from .numbers import number_text

_override: Path | None = None


def use_templates(folder: Path | None) -> None:
    """Look in `folder` first for every template (None: only the bundled ones)."""
    global _override
    folder = Path(folder).resolve() if folder else None
    if folder != _override:
        _override = folder
        environment.cache_clear()


def template_path(name: str) -> Path:
    """The file of a template: the town's own copy when it has one, else the bundled one."""
    if _override is not None and (_override / name).is_file():
        return _override / name
    return Path(str(resources.files("pointsbatch").joinpath("templates", name)))


@lru_cache(maxsize=2)
def environment(autoescape: bool = True) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("pointsbatch", "templates")]
    if _override is not None:
        loaders.insert(0, jinja2.FileSystemLoader(str(_override)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(["html", "j2.html"]) if autoescape else False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    env.filters["when"] = format_when
    return env


def format_when(value: Any) -> str:
    """A run's time (ISO 8601, as run.json keeps it) as a person reads it: 2026年11月27日 10:30; other text as is."""
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return f"{when.year}年{when.month}月{when.day}日 {when:%H:%M}"


def format_number(value: Any, decimals: int = 1) -> str:
    """A score as the pages show it: one decimal at most."""
    return number_text(value, decimals)


def render_text(name: str, **context: Any) -> str:
    return environment(autoescape=name.endswith(".html")).get_template(name).render(**context)

"""The Jinja environment over `templates/`, where every sentence a user reads in an output lives.

A town may keep its own copies of any of these files in a folder (`run --templates DIR`); a file found there is
used instead of the bundled one of the same name, so outputs can be restyled without touching the installation.
The folder is an argument of every function here (`templates`, None: only the bundled files), never a setting of
the process: a run's renderers are handed it from the run's options.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from .numbers import number_text


def template_path(name: str, templates: Path | None = None) -> Path:
    """The file of a template: the town's own copy in `templates` when it has one, else the bundled one."""
    if templates is not None and (Path(templates) / name).is_file():
        return Path(templates) / name
    return Path(str(resources.files("pointsbatch").joinpath("templates", name)))


def environment(templates: Path | None = None, autoescape: bool = True) -> jinja2.Environment:
    """The environment that finds templates in `templates` first, then among the bundled ones."""
    return _environment(Path(templates).resolve() if templates is not None else None, autoescape)


@lru_cache(maxsize=8)
def _environment(templates: Path | None, autoescape: bool) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("pointsbatch", "templates")]
    if templates is not None:
        loaders.insert(0, jinja2.FileSystemLoader(str(templates)))
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
    if type(value) is float or type(value) is int:  # the common case, remembered: a page shows thousands of them
        return _number_text(value, decimals)
    return number_text(value, decimals)


_number_text = lru_cache(maxsize=4096)(number_text)


def render_text(name: str, templates: Path | None = None, /, **context: Any) -> str:
    """Template `name` (the town's copy in `templates` first) rendered with `context`; HTML is escaped."""
    return environment(templates, autoescape=name.endswith(".html")).get_template(name).render(**context)

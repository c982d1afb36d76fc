"""Click in Chinese: the command classes, option types and error texts the command line uses.

Click writes its own help headings ("Usage:", "Options:") and errors ("Missing option …") in English through
gettext; a town clerk reads Chinese. Rather than install a translation catalogue for click's private strings, the
commands format their help themselves, the option types fail with Chinese messages, and `Group.main` turns each
click exception into one Chinese sentence, from the exception's own fields.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import click

METAVARS = {"FLOAT RANGE": "数", "INTEGER RANGE": "整数", "INTEGER": "整数", "FLOAT": "数", "TEXT": "文字",
            "PATH": "路径", "FILE": "文件", "DIRECTORY": "文件夹", "DATE": "日期"}
HELP_TEXT = "显示本帮助并退出"


def _chinese_record(record: tuple[str, str]) -> tuple[str, str]:
    names, text = record
    names = re.sub(r"\b(" + "|".join(METAVARS) + r")\b", lambda m: METAVARS[m.group(1)], names)
    return names, re.sub(r"\s*\[([^\[\]]*)\]$", lambda m: "［" + _extra_words(m.group(1)) + "］", text)


def _extra_words(extra: str) -> str:
    """click's bracket after an option's help ("default: 600", "required", "x>=1"), in Chinese."""
    parts = []
    for part in extra.split(";"):
        part = part.strip()
        if part.startswith("default:"):
            parts.append("默认 " + part.removeprefix("default:").strip())
        elif part == "required":
            parts.append("必填")
        else:
            parts.append(_range_words(part))
    return "；".join(parts)


def _range_words(text: str) -> str:
    """"x>=1", "0<=x<=10" as 不小于1, 0至10."""
    words = {">=": "不小于", ">": "大于", "<=": "不大于", "<": "小于"}
    m = re.fullmatch(r"x\s*(>=|>|<=|<)\s*(\S+)", text)
    if m:
        return f"{words[m.group(1)]}{m.group(2)}"
    m = re.fullmatch(r"(\S+)\s*(<=|<)\s*x\s*(<=|<)\s*(\S+)", text)
    if m:
        return f"{m.group(1)}至{m.group(4)}"
    return text


def _value_words(message: str) -> str:
    """click's own complaint about a value, in Chinese where it has a usual shape; else as it is."""
    m = re.fullmatch(r"'?(.*?)'? is not a valid (float|integer|float range|integer range)\.?", message)
    if m:
        return f"「{m.group(1)}」不是{'整数' if 'integer' in m.group(2) else '数'}"
    m = re.fullmatch(r"'?(.*?)'? is not in the range (.*?)\.?", message)
    if m:
        return f"「{m.group(1)}」超出范围，应{_range_words(m.group(2))}"
    return message


class Command(click.Command):
    """A command whose help page is in Chinese."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", "[选项]")
        super().__init__(*args, **kwargs)

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = super().get_help_option(ctx)
        if option is not None:
            option.help = HELP_TEXT
        return option

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), prefix="用法：")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records = [_chinese_record(r) for p in self.get_params(ctx)
                   if isinstance(p, click.Option) and (r := p.get_help_record(ctx)) is not None]
        write_section(formatter, "选项", records)


def _width(text: str) -> int:
    """Columns the text takes on a terminal: a Chinese character takes two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def write_section(formatter: click.HelpFormatter, heading: str, rows: list[tuple[str, str]]) -> None:
    """A heading and its rows, the second column aligned by display width (click's own counts characters)."""
    if not rows:
        return
    formatter.write(f"\n{heading}：\n")
    first = min(max(_width(name) for name, _ in rows), 30)
    for name, text in rows:
        pad = first - _width(name)
        if pad < 0:
            formatter.write(f"  {name}\n  {' ' * first}  {text}\n")
        else:
            formatter.write(f"  {name}{' ' * pad}  {text}\n")


class Group(Command, click.Group):
    """The `pointsbatch` group: Chinese help, Chinese errors, subcommands in Chinese too."""

    command_class = Command

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subcommand_metavar", "命令 [参数]...")
        super().__init__(*args, **kwargs)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        Command.format_options(self, ctx, formatter)
        rows = [(name, cmd.get_short_help_str(limit=80)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        write_section(formatter, "命令", rows)

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            value = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            show_error(exc)
            sys.exit(exc.exit_code)
        except click.Abort:  # Ctrl-C before the command's own work began: nothing was written
            click.echo("已中止，没有写入任何文件。", err=True)
            sys.exit(2)
        sys.exit(value if isinstance(value, int) else 0)


def show_error(exc: click.ClickException) -> None:
    """The usage line, where to find help, and what was wrong: all in Chinese."""
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        pieces = ctx.command.collect_usage_pieces(ctx)
        click.echo(f"用法：{ctx.command_path} {' '.join(pieces)}", err=True)
        click.echo(f"查看帮助：{ctx.command_path} -h", err=True)
    try:
        text = error_text(exc)
    except Exception:  # whatever click's exception holds, no traceback: its own message then
        text = exc.format_message()
    click.echo(f"错误：{text}", err=True)


def _hint(param: click.Parameter | None, fallback: Any = None) -> str:
    if param is None:
        return str(fallback or "")
    if isinstance(param, click.Argument):
        return param.human_readable_name
    return " / ".join(param.opts)


def error_text(exc: click.ClickException) -> str:
    """One Chinese sentence for a click exception, built from its fields (not from its English message)."""
    if isinstance(exc, click.MissingParameter):
        kind = "参数" if isinstance(exc.param, click.Argument) or exc.param_type == "argument" else "选项"
        return f"缺少{kind} {_hint(exc.param, exc.param_hint)}"
    if isinstance(exc, click.NoSuchOption):
        guess = f"（是否想用 {'、'.join(exc.possibilities)}？）" if exc.possibilities else ""
        return f"没有这个选项：{exc.option_name}{guess}"
    if type(exc).__name__ == "NoSuchCommand" or exc.message.startswith("No such command"):  # (click 8.4 on)
        name = getattr(exc, "command_name", "") or exc.message.removeprefix("No such command").strip(" '.")
        return f"没有这个命令：{name}，可用的命令有 template、check、run、send"
    if isinstance(exc, click.BadOptionUsage):
        return f"选项 {exc.option_name} 的用法不对：后面应跟一个取值"
    if isinstance(exc, click.BadParameter):
        return f"{_hint(exc.param, exc.param_hint)} 的取值不对：{_value_words(exc.message)}"
    if isinstance(exc, click.UsageError):
        extra = re.match(r"Got unexpected extra arguments? \((.*)\)", exc.message)
        if extra:
            return f"多余的参数：{extra.group(1)}"
        return exc.message
    return exc.format_message()


class Choice(click.Choice):
    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in self.choices:
            return value
        self.fail(f"「{value}」不是可选的值，应为 {' 或 '.join(map(str, self.choices))}", param, ctx)


class Integer(click.types.IntParamType):
    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            self.fail(f"「{value}」不是整数", param, ctx)


INTEGER = Integer()


class Path(click.Path):
    """click.Path whose complaints are in Chinese."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import os

        text = os.fsdecode(value) if isinstance(value, (bytes, os.PathLike)) else str(value)
        if self.exists and not os.path.exists(text):
            what = "文件" if not self.dir_okay else "文件夹" if not self.file_okay else "文件或文件夹"
            self.fail(f"找不到{what}「{text}」", param, ctx)
        if os.path.isdir(text) and not self.dir_okay:
            self.fail(f"「{text}」是文件夹，这里应为文件", param, ctx)
        if os.path.isfile(text) and not self.file_okay:
            self.fail(f"「{text}」是文件，这里应为文件夹", param, ctx)
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"无法使用「{text}」（没有读写权限？）", param, ctx)

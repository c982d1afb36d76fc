"""The command line: parse options, call a stage or the batch, print. Nothing else lives here."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from . import clock
from .cli_chinese import INTEGER, Choice
from .cli_chinese import Group as ChineseGroup
from .cli_chinese import Path as PathType
from .display import printable
from .names import SETTINGS_FILE, period_title

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _plain(text: str) -> str:
    """Outside text for rich: escape characters shown escaped (printable), and [brackets] not read as markup."""
    from rich.markup import escape

    return escape(printable(text))


class CliError(click.ClickException):
    """A refusal the clerk can fix (settings, an existing file): a Chinese message and exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"错误：{self.format_message()}", file=file or sys.stderr)


class DateType(click.ParamType):
    """A date as workbooks accept it (2026-03-05, 2026/3/5, 2026.3.5, 2026年3月5日), or a TOML date."""

    name = "日期"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        from .workbook.values import parse_date

        parsed = parse_date(value) if isinstance(value, (str, dt.date)) else None
        if not isinstance(parsed, dt.date):
            self.fail(f"「{value}」不是日期，请写成 2026-03-05、2026/3/5、2026.3.5 或 2026年3月5日", param, ctx)
        if not 2000 <= parsed.year <= 2099:  # a typo (9999-12-31) would break every date computed from it
            self.fail(f"「{value}」不像是计分或公示的日期，请检查年份", param, ctx)
        return parsed


DATE = DateType()


def load_settings(path: Path = Path(SETTINGS_FILE),
                  commands: dict[str, click.Command] | None = None) -> dict[str, dict[str, Any]]:
    """pointsbatch.toml: top-level keys apply to every command, [run]/[send]/... tables to one; a command-line
    option wins. Keys may be spelled with - or _. With `commands`, every value is checked against the option it
    sets: a value of the wrong kind, or a key no command knows, is refused naming the setting and the file."""
    if not path.exists():
        return {}
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"设置文件 {path} 格式有误：{exc}") from exc
    common = {k.replace("-", "_"): v for k, v in doc.items() if not isinstance(v, dict)}
    out = {}
    for command in ("template", "check", "run", "send"):
        section = doc.get(command, {})
        if not isinstance(section, dict):
            section = {}
        out[command] = {**common, **{k.replace("-", "_"): v for k, v in section.items()}}
    if commands is not None:
        out = _checked_settings(path, doc, out, commands)
    return out


def _option_names(command: click.Command) -> dict[str, click.Option]:
    """Each option by its parameter name and by its long flag (`ssl` for --ssl, `rules` for --rules)."""
    names: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.name:
            names[param.name] = param
            for opt in param.opts:
                if opt.startswith("--"):
                    names[opt[2:].replace("-", "_")] = param
    return names


def _checked_settings(path: Path, doc: dict[str, Any], settings: dict[str, dict[str, Any]],
                      commands: dict[str, click.Command]) -> dict[str, dict[str, Any]]:
    """`settings` keyed by each command's parameter names, every value checked against its option."""
    options = {name: _option_names(cmd) for name, cmd in commands.items()}
    for key, value in doc.items():
        if isinstance(value, dict) and key not in options:
            raise CliError(f"设置文件 {path} 中的 [{key}] 不是命令的名称，应为 {'、'.join(options)} 之一")
        if not isinstance(value, dict) and not any(key.replace("-", "_") in known for known in options.values()):
            raise CliError(f"设置文件 {path} 中的设置项 {key} 不是任何命令的选项，请检查拼写")
    checked: dict[str, dict[str, Any]] = {}
    for command, values in settings.items():
        own = {k.replace("-", "_") for k in doc.get(command, {})} if isinstance(doc.get(command), dict) else set()
        checked[command] = {}
        for key, value in values.items():
            param = options.get(command, {}).get(key)
            if param is None:
                if key in own:
                    raise CliError(f"设置文件 {path} 中的 [{command}] {key} 不是 {command} 命令的选项，请检查拼写")
                continue  # a top-level setting for another command
            problem = _setting_problem(param, value)
            if problem:
                where = f"[{command}] {key}" if key in own else key
                raise CliError(f"设置文件 {path} 中的设置项 {where} = {value!r} 不对：{problem}")
            checked[command][str(param.name)] = value
    return checked


def _setting_problem(param: click.Option, value: Any) -> str | None:
    """Why a settings-file value cannot be used for this option, or None."""
    kind = param.type
    if param.is_flag or isinstance(kind, click.types.BoolParamType):
        return None if isinstance(value, bool) else "应为 true 或 false"
    if isinstance(kind, click.types.IntParamType):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "应为整数"
    if isinstance(kind, click.Choice):
        return None if value in kind.choices else f"应为 {'、'.join(map(str, kind.choices))} 之一"
    if isinstance(kind, DateType):
        try:
            kind.convert(value, None, None)
        except click.BadParameter as exc:
            return exc.message
        return None
    if isinstance(kind, (click.Path, click.types.StringParamType)):
        return None if isinstance(value, str) else "应为加引号的文字，如 \"支部名录.xlsx\""
    return None


class Group(ChineseGroup):
    def make_context(self, info_name, args, parent=None, **extra):
        extra.setdefault("default_map", load_settings(commands=self.commands))
        return super().make_context(info_name, args, parent=parent, **extra)


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(package_name="pointsbatch", message="pointsbatch %(version)s", help="显示版本号并退出")
def main() -> None:
    """党员积分制批处理：校验支部积分工作簿，计分，生成结果、公示和反馈。

    常用步骤：pointsbatch template 生成空白工作簿 → 各支部填写 → pointsbatch run 收件文件夹 → pointsbatch send 结果文件夹。
    """


def _rules(path: Path | None):
    from .rules import RulesError, load_rules

    try:
        return load_rules(path)
    except RulesError as exc:
        click.echo(f"错误：{printable(str(exc))}", err=True)
        sys.exit(2)


@main.command(context_settings=CONTEXT)
@click.option("-o", "--output", "output", type=PathType(dir_okay=False, path_type=Path), required=True,
              help="要生成的工作簿文件，如 第一党支部2027.xlsx")
@click.option("--year", type=INTEGER, help="考核年度，默认今年")
@click.option("--branch", help="支部名称（按镇支部名录的写法）")
@click.option("--from", "previous", type=PathType(exists=True, dir_okay=False, path_type=Path),
              help="上一年度的工作簿：沿用其中的支部信息和党员名册")
@click.option("--rules", "rules_path", type=PathType(exists=True, dir_okay=False, path_type=Path),
              help="积分规则文件（TOML），默认使用内置规则")
def template(output: Path, year: int | None, branch: str | None, previous: Path | None,
             rules_path: Path | None) -> None:
    """生成一份空白的标准支部积分工作簿（含下拉列表和填表说明）。"""
    from .workbook.template import build_template, carry_over, write_workbook

    exists = f"文件 {printable(str(output))} 已经存在；template 从不覆盖已有的文件，请换一个文件名"
    if output.exists() or output.is_symlink():
        raise CliError(exists)
    rules = _rules(rules_path)
    filling = carry_over(previous) if previous else None
    wb = build_template(rules, year, branch, filling)
    try:
        write_workbook(wb, output, overwrite=False)
    except FileExistsError:
        raise CliError(exists) from None
    except OSError as exc:
        raise CliError(f"无法写入 {printable(str(output))}（{exc.strerror or exc}）") from None
    click.echo(f"已生成空白工作簿：{printable(str(output))}")


@main.command(context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, type=PathType(path_type=Path))
@click.option("--marked", type=PathType(file_okay=False, path_type=Path),
              help="把标出问题的工作簿副本写到这个文件夹")
@click.option("--period", type=Choice(["annual", "h1"]), default="annual",
              help="计分期间：annual 年度（默认），h1 上半年")
@click.option("--year", type=INTEGER, help="计分年度，默认取工作簿中的年度")
@click.option("--rules", "rules_path", type=PathType(exists=True, dir_okay=False, path_type=Path),
              help="积分规则文件（TOML）")
@click.option("--json", "as_json", is_flag=True, help="以JSON输出问题（供其他程序使用）")
def check(files: tuple[Path, ...], marked: Path | None, period: str, year: int | None, rules_path: Path | None,
          as_json: bool) -> None:
    """校验工作簿并列出全部问题；不写任何文件，除非用 --marked 要求标注副本。"""
    import json
    from functools import partial

    from .batch import safe_component
    from .validate import validate_workbook
    from .workbook.read import read_workbook

    rules = _rules(rules_path)
    any_error = False
    report = []
    missing = False
    for path in files:
        if not path.is_file():
            from .workbook.messages import problem

            missing = True
            gone = [problem("file_not_found", "", "", str(path))]
            report.append({"file": str(path), "branch": None, "errors": 1, "problems": [p.as_dict() for p in gone]})
            if not as_json:
                _print_problems(path, None, gone)
            continue
        book = read_workbook(path)
        result = validate_workbook(book, rules, period, year)
        errors = sum(p.is_error for p in result.problems)
        any_error |= errors > 0
        report.append({"file": printable(str(path)), "branch": result.branch_name, "errors": errors,
                       "problems": [p.as_dict() for p in result.problems]})
        if not as_json:
            _print_problems(path, result.branch_name, result.problems)
        if marked and errors and book.readable:
            from .workbook.marked import write_marked_copy  # openpyxl: only when a copy is asked for

            try:
                target = _write_new(marked, f"{safe_component(path.stem, '工作簿')}_问题标注", files,
                                    partial(_write_marked, write_marked_copy, path, result.problems))
            except OSError as exc:
                click.echo(f"  无法写出标注副本到 {printable(str(marked))}（{exc.strerror or exc}）", err=True)
                missing = True  # something asked for was not done
                continue
            except Exception:  # a workbook neither the patch nor openpyxl can write back (as `run`, no copy)
                click.echo("  无法为这个工作簿生成标注副本（文件内部格式异常）；请按上面列出的问题逐项修改，"
                           "或在 Excel/WPS 中另存为新的 .xlsx 后再检查", err=True)
                missing = True
                continue
            if not as_json:
                click.echo(f"  已写出标注副本：{printable(str(target))}")
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    sys.exit(2 if missing else 1 if any_error else 0)


def _write_marked(write_marked_copy, source: Path, problems, tmp: str) -> None:
    write_marked_copy(source, problems, Path(tmp))


def _write_new(folder: Path, stem: str, inputs: tuple[Path, ...], write) -> Path:
    """`folder/stem.xlsx`, or `stem（2）.xlsx`…: the first name that is free and none of the inputs, written by
    `write(tmp_name)` whole; an existing file is never replaced, even one that appears meanwhile."""
    from .files import atomic_create, name_key, unique

    taken = {f"/{name_key(p.stem)}" for p in inputs if p.suffix.lower() == ".xlsx" and _same_folder(p.parent, folder)}
    while True:
        target = folder / f"{unique(stem, taken)}.xlsx"
        if target.exists() or target.is_symlink():
            continue
        try:
            atomic_create(target, write)
            return target
        except FileExistsError:
            continue


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _console():
    """rich's console; when the output is a file or a pipe, lines are not wrapped (a wrapped line could break a
    number or an option in two)."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=100_000, soft_wrap=True)
    return console


def _print_problems(path: Path, branch: str | None, problems) -> None:
    from rich.table import Table

    console = _console()
    errors = sum(p.is_error for p in problems)
    title = _plain(f"{path.name}（{branch or '未识别支部'}）")
    if not problems:
        console.print(f"[green]✓[/green] {title}：没有发现问题")
        return
    console.print(f"[red]✗[/red] {title}：{errors}处错误，{len(problems) - errors}处提醒" if errors else
                  f"[yellow]![/yellow] {title}：{len(problems)}处提醒，可以计分")
    table = Table(show_lines=False, header_style="bold")
    for col in ("类别", "工作表", "单元格", "问题"):
        table.add_column(col, overflow="fold")
    for p in problems:
        table.add_row("[red]错误[/red]" if p.is_error else "[yellow]提醒[/yellow]", _plain(p.sheet), _plain(p.cell),
                      _plain(p.message))
    console.print(table)


@main.command(context_settings=CONTEXT)
@click.argument("inbox", type=PathType(path_type=Path))
@click.option("-o", "--out", type=PathType(path_type=Path),
              help="输出文件夹，默认 results/<年度><期间>（如 results/2026年度）；只能是新的、空的，"
                   "或同一年度同一期间上次计分的结果文件夹；上次的结果移到其中的“历史”文件夹")
@click.option("--period", type=Choice(["annual", "h1"]), default="annual",
              help="计分期间：annual 年度（默认），h1 上半年（1-6月）")
@click.option("--year", type=INTEGER, help="计分年度，默认取工作簿中的年度")
@click.option("--registry", type=PathType(path_type=Path), help="镇支部名录（支部名录.xlsx）")
@click.option("--rules", "rules_path", type=PathType(path_type=Path), help="积分规则文件（TOML），默认内置规则")
@click.option("--jobs", type=INTEGER, default=0, help="同时处理的工作簿数，默认（也最多）为CPU核心数")
@click.option("--notice-start", type=DATE,
              help="公示开始日期，默认与计分日期相同；可写 2026-07-05、2026/7/5 或 2026年7月5日")
@click.option("--contact", help="公示中受理异议的联系人，默认各支部的积分记录员")
@click.option("--run-date", type=DATE, help="计分日期，默认今天")
@click.option("--trust-workbook-addresses", is_flag=True,
              help="没有支部名录时，把回复发给工作簿中填写的联系邮箱")
@click.option("--sender", help="回复邮件的发件人地址（如 dangjian@example.gov.cn），也可写在 pointsbatch.toml 中")
@click.option("--templates", type=PathType(path_type=Path),
              help="本镇自己的输出模板文件夹：其中与内置模板同名的文件（如 notice.html、支部积分结果.xlsx）优先使用")
def run(inbox: Path, out: Path | None, period: str, year: int | None, registry: Path | None, rules_path: Path | None,
        jobs: int, notice_start: dt.date | None, contact: str | None, run_date: dt.date | None,
        trust_workbook_addresses: bool, sender: str | None, templates: Path | None) -> None:
    """处理收件文件夹中的全部工作簿：计分，生成各支部结果、公示、全镇汇总和回复邮件。"""
    from concurrent.futures.process import BrokenProcessPool

    from rich.progress import Progress

    from .batch import RunError, RunOptions, run_batch
    from .render.message import SENDER
    from .rules import RulesError

    console = _console()
    if registry is not None and not Path(registry).is_file():
        console.print(f"[red]错误：[/red]找不到支部名录 {_plain(str(registry))}")
        sys.exit(2)
    if rules_path is not None and not Path(rules_path).is_file():
        console.print(f"[red]错误：[/red]找不到规则文件 {_plain(str(rules_path))}")
        sys.exit(2)
    if sender is not None:
        from .mail import MailError, check_sender

        try:
            sender = check_sender(sender)
        except MailError as exc:
            console.print(f"[red]错误：[/red]{exc}")
            sys.exit(2)
    cores = os.cpu_count() or 1
    options = RunOptions(
        inbox=Path(inbox), out=Path(out) if out is not None else None, period=period, year=year, registry=registry,
        rules_path=rules_path, jobs=max(1, min(jobs or cores, cores)),  # (more workers than cores only cost memory)
        run_date=run_date or clock.today(),
        notice_start=notice_start, contact=contact,
        trust_workbook_addresses=trust_workbook_addresses, sender=sender or SENDER, templates=templates,
    )
    total = _count_files(Path(inbox))
    try:
        if total > 3 and console.is_terminal:
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("正在处理工作簿", total=total)
                report = run_batch(options, progress=lambda _name: bar.advance(task))
        else:
            report = run_batch(options)
    except (RunError, RulesError) as exc:
        console.print(f"[red]错误：[/red]{_plain(str(exc))}")
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[red]已中断：[/red]输出文件夹保持为上一次完整的结果。")
        sys.exit(2)
    except BrokenProcessPool:  # a worker was ended from outside (Ctrl-C, out of memory, the task manager)
        console.print("[red]已中断：[/red]处理工作簿的子进程被意外结束（可能是按了 Ctrl-C，或电脑内存不足）。"
                      "输出文件夹保持为上一次完整的结果，请重新运行。")
        sys.exit(2)
    except OSError as exc:
        console.print(f"[red]错误：[/red]写入输出时出错（{_plain(str(exc.strerror or exc))}），输出文件夹保持为上一次完整的结果。"
                      "如果结果文件正在 Excel 或 WPS 中打开，请先关闭再运行。")
        sys.exit(2)
    _print_summary(console, report)
    if registry is None:
        console.print("没有指定支部名录：不检查未报送支部，" + (
            "邮件按工作簿中填写的联系邮箱发送。" if trust_workbook_addresses else "邮件不写收件人。") +
            "要用名录，请加 --registry 支部名录.xlsx，或写在 pointsbatch.toml 中。")
    sys.exit(report.exit_code)


def _count_files(inbox: Path) -> int:
    try:
        return sum(1 for p in inbox.iterdir() if p.is_file())
    except OSError:
        return 0


def _print_summary(console, report) -> None:
    from rich.table import Table

    title = f"{period_title(report.year, report.period)}积分计算结果"
    table = Table(title=title, header_style="bold")
    for col in ("文件", "支部", "结果", "说明"):
        table.add_column(col, overflow="fold")
    first_half_only = [f for f in report.files if any(p.code == "second_half_blank" for p in f.problems)]
    most_first_half = len(first_half_only) * 2 > report.count("accepted") + report.count("rejected")
    for f in report.files:
        if f.status == "accepted":
            failed = f.counts.failed if f.counts else 0
            note = f"{f.counts.members if f.counts else 0}名党员" + (f"，{failed}名不合格" if failed else "") + (
                f"，{f.flags}处需复核" if f.flags else "")
            note = _plain(note) + "".join(f"。[yellow]公示开始日期早于支委会核定日期{p.value}，请核对[/yellow]"
                                          for p in f.problems if p.code == "notice_before_approval")
            table.add_row(_plain(f.name), _plain(f.branch or ""), "[green]通过[/green]", note)
        elif f.status == "rejected":
            first = next((p for p in f.problems if p.is_error), None)
            text = first.message if first else ""
            if first is not None and first.code == "second_half_blank" and most_first_half:
                text = "下半年的考勤全部为空"  # said once for the run, below
            table.add_row(_plain(f.name), _plain(f.branch or ""), "[red]退回[/red]", _plain(f"{f.errors}处错误。{text}"))
        else:
            table.add_row(_plain(f.name), "", "[dim]忽略[/dim]", _plain(f.reason))
    for name in report.missing:
        table.add_row("", _plain(name), "[yellow]未报送[/yellow]", "支部名录中有，但没有收到工作簿")
    console.print(table)
    console.print(
        f"通过 {report.count('accepted')} 份，退回 {report.count('rejected')} 份，忽略 {report.count('ignored')} 份，"
        f"未报送 {len(report.missing)} 个支部。"
    )
    if report.kept:
        console.print(f"输出文件夹中原有 {len(report.kept)} 个不是本程序生成（或生成后被改动过）的文件，已原样保留："
                      + _plain("、".join(report.kept[:5])) + ("等" if len(report.kept) > 5 else ""))
    if report.mail_held:
        console.print(f"[yellow]{len(report.mail_held)} 份退回的工作簿不能确定是哪个支部报送的，退回意见不会自动发送，"
                      "请核实后自行转交：[/yellow]")
        for held in report.mail_held:
            console.print(_plain(f"  {held['file']}：{held['reason']}"))
    if most_first_half:
        console.print(f"[yellow]大多数工作簿（{len(first_half_only)}份）下半年的考勤全部为空，像是只填到了上半年："
                      "如果要计算上半年积分，请用 --period h1 重新运行。[/yellow]")
    if report.changes:
        console.print(f"与上次计分相比，{len(report.changes)} 名党员的总分有变化，详见 index.html。")
    if report.first_run and report.changes_since_first and report.changes_since_first != report.changes:
        from .jinja import format_when

        console.print(f"与本期第一次计分（{format_when(report.first_run)}）相比，"
                      f"{len(report.changes_since_first)} 名党员的总分有变化，详见 index.html。")
    for note in report.comparison_notes:
        console.print(f"[yellow]无法比较：[/yellow]{_plain(note)}")
    out = report.out
    console.print(_plain(f"结果在：{out}（总览请打开 {out / 'index.html'}；回复邮件在 {out / '发件箱'}）"))


@main.command(context_settings=CONTEXT)
@click.argument("out", type=PathType(path_type=Path))
@click.option("--smtp-host", help="SMTP服务器地址（--dry-run 时不需要）")
@click.option("--smtp-port", type=INTEGER, help="SMTP端口，默认 25（--starttls 为 587，--ssl 为 465）")
@click.option("--smtp-user", help="SMTP用户名；密码从环境变量 POINTSBATCH_SMTP_PASSWORD 读取")
@click.option("--starttls", is_flag=True, help="连接后用 STARTTLS 加密")
@click.option("--ssl", "use_ssl", is_flag=True, help="用 SSL/TLS 直接加密连接")
@click.option("--sender", help="发件人地址（邮件的 From 和信封发件人），如 dangjian@example.gov.cn；"
              "也可写在 pointsbatch.toml 中")
@click.option("--resend", multiple=True, metavar="支部名称",
              help="把这个支部的邮件再发一次（即使已经发过）；可写多次")
@click.option("--dry-run", is_flag=True, help="只列出将发给谁，不发送")
@click.option("--reply-timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="发出一封邮件后等待服务器确认的最长秒数（SMTP标准为10分钟）")
@click.option("--time-limit", type=click.FloatRange(min=1), default=3600, show_default=True,
              help="整次发送的最长秒数，到时停止（已发送的都有记录，下次接着发）")
@click.option("--insecure", is_flag=True, help="不校验服务器证书（仅用于内部自签名证书）")
def send(out: Path, smtp_host: str | None, smtp_port: int | None, smtp_user: str | None, starttls: bool,
         use_ssl: bool, sender: str | None, resend: tuple[str, ...], dry_run: bool, reply_timeout: float,
         time_limit: float, insecure: bool) -> None:
    """发送 run 在 OUT/发件箱 中生成的回复邮件，每封只发一次；内容有变化的作为更正再发。"""
    from .mail import MailError, SmtpSettings, send_outbox

    console = _console()
    if starttls and use_ssl:
        console.print("[red]错误：[/red]--starttls 和 --ssl 只能选一个")
        sys.exit(2)
    if not smtp_host and not dry_run:
        console.print("[red]错误：[/red]请用 --smtp-host 指定邮件服务器（或写在 pointsbatch.toml 的 [send] 中）；"
                      "只想看看会发给谁，可加 --dry-run")
        sys.exit(2)
    settings = SmtpSettings(
        host=smtp_host or "", port=smtp_port or (465 if use_ssl else 587 if starttls else 25), user=smtp_user,
        password=os.environ.get("POINTSBATCH_SMTP_PASSWORD"), starttls=starttls, ssl=use_ssl,
        verify=not insecure, sender=sender, reply_timeout=reply_timeout, time_limit=time_limit,
    )
    try:
        outcome = send_outbox(Path(out), settings, dry_run=dry_run, resend=resend,
                              log=lambda line: console.print(_plain(line)))  # names are neither markup nor escapes
    except MailError as exc:
        console.print(f"[red]错误：[/red]{_plain(str(exc))}")
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[red]已中断：[/red]已发出的邮件都记在发送记录中，再运行 send 会接着发送剩下的。")
        sys.exit(2)
    sys.exit(outcome.exit_code)


if __name__ == "__main__":
    main()

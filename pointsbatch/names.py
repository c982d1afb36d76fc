"""Names shared across the run's stages: the folders of OUT and how a year and period are written."""

from __future__ import annotations

HISTORY = "历史"
BRANCHES = "支部"
FEEDBACK = "问题反馈"
OUTBOX = "发件箱"
SENT_LOG = "发送记录.json"
SETTINGS_FILE = "pointsbatch.toml"  # in the working folder: the clerk's usual options
RESULTS = "results"  # the default folder of every run's OUT: results/<year><period>

# the grades (参考等次) and the exempt mark, as every output writes them
EXCELLENT, PASSED, FAILED, EXEMPT = "优秀", "合格", "不合格", "免于积分管理"
GRADES = (EXCELLENT, PASSED, FAILED)

PERIOD_LABELS = {"annual": "年度", "h1": "上半年"}


def period_title(year: int | None, period: str) -> str:
    """「2026年度」, 「2026年上半年」 (the year left out when it is not known)."""
    label = PERIOD_LABELS.get(period, period)
    if year is None:
        return label
    return f"{year}{label}" if label.startswith("年") else f"{year}年{label}"


# what each attachment of a branch's message is, by how its file name ends (the mail body names them)
ATTACHMENTS = {"results_name": "积分结果.xlsx", "notice_name": "积分公示.html", "slip_name": "个人积分告知单.html",
               "marked_name": "_问题标注.xlsx"}

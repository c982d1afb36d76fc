"""Names shared by the run's outputs: folders of OUT."""

from __future__ import annotations

HISTORY = "历史"


BRANCHES = "支部"


FEEDBACK = "问题反馈"


OUTBOX = "发件箱"


SENT_LOG = "发送记录.json"

"""The run's clock: one seam for every timestamp a run writes.

`SOURCE_DATE_EPOCH` (the reproducible-builds convention, seconds since 1970 UTC) pins it, so two runs over the same
inputs write the same bytes; otherwise it is the computer's clock. Times carry the local UTC offset (a clerk in
China is at +08:00), never a naive time.
"""

from __future__ import annotations

import datetime as dt
import os


def now() -> dt.datetime:
    """The current time with the local offset, to the second; SOURCE_DATE_EPOCH when it is set."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).astimezone()
    return dt.datetime.now().astimezone().replace(microsecond=0)


def today() -> dt.date:
    return now().date()

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


import pytest  # noqa: E402


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """Two plain branches (a module may define its own `inbox`)."""
    from helpers import build

    folder = tmp_path / "收件"
    folder.mkdir()
    build(folder / "一支部.xlsx", info_over={"branch": "第一党支部"})
    build(folder / "二支部.xlsx", info_over={"branch": "第二党支部"})
    return folder

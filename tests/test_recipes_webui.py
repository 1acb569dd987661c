"""`llamafactory-cli webui` lists the MedAsst datasets when its "Data dir" box points at the repo root.

The WebUI calls `llamafactory.webui.control.list_datasets(dataset_dir, training_stage)` when the dataset dropdown
gets focus; the box's default is `data`, so users type `.` (started from the repo root) or the repo's absolute path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
WANTED = {"medasst_train", "medasst_test", "medasst_demo_train", "medasst_demo_test"}


def choices(dropdown) -> set[str]:
    out = set()
    for choice in dropdown.choices:  # gradio stores (label, value) pairs
        out.add(choice[1] if isinstance(choice, tuple | list) else choice)
    return out


@pytest.mark.parametrize("dataset_dir", [".", str(REPO_ROOT)])
def test_webui_lists_medasst_datasets(dataset_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from llamafactory.webui.control import list_datasets

    monkeypatch.chdir(REPO_ROOT)
    listed = choices(list_datasets(dataset_dir, "Supervised Fine-Tuning"))
    assert listed >= WANTED
    # none of ours is a pairwise (ranking) set, so the DPO/RM list holds none of them
    assert not (choices(list_datasets(dataset_dir, "DPO")) & WANTED)

"""`python -m converters fetch` with the network replaced: layout, atomic placement, LFS-pointer refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from converters import fetch as fetch_mod
from converters.fetch import PLAN, FetchError, fetch
from converters.registry import MODULES


def _fake(calls: list[tuple[str, str]], payload: bytes = b"data\n"):
    def download(repo: str, filename: str, into: Path) -> Path:
        calls.append((repo, filename))
        target = into / (filename or repo.rsplit("/", 1)[-1])
        target.write_bytes(payload)
        return target

    return download


def test_fetch_places_every_file_where_build_reads_it(tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []
    result = fetch(tmp_path, dataset_download=_fake(calls), url_fetch=_fake(calls))
    assert set(result.values()) == {"downloaded"} and len(calls) == len(PLAN)
    for module in MODULES.values():
        for split in ("train", "test"):
            assert all(p is not None for p in module.inputs(tmp_path, split)), (module.SOURCE, split)
    assert not [p for p in tmp_path.rglob(".fetch-*")]  # temp dirs cleaned up
    # a second run keeps what is there
    calls.clear()
    assert set(fetch(tmp_path, dataset_download=_fake(calls), url_fetch=_fake(calls)).values()) == {"present"}
    assert calls == []


def test_lfs_pointer_is_refused_and_other_files_still_fetched(tmp_path: Path) -> None:
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:601a\nsize 59919275\n"
    with pytest.raises(FetchError, match=r"webMedQA/train\.zip"):
        fetch(tmp_path, dataset_download=_fake([]), url_fetch=_fake([], pointer))
    assert not (tmp_path / "webMedQA" / "train.zip").exists()
    assert (tmp_path / "CMtMedQA" / "CMtMedQA.json").read_bytes() == b"data\n"


def test_cli_fetch_uses_the_hub_downloader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from converters.__main__ import main

    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(fetch_mod, "hf_download", _fake(calls))
    monkeypatch.setattr(fetch_mod, "url_download", _fake(calls))
    monkeypatch.setattr(
        fetch_mod.fetch, "__kwdefaults__", {**fetch_mod.fetch.__kwdefaults__, "url_fetch": _fake(calls)}
    )
    assert main(["fetch", "--raw-dir", str(tmp_path)]) == 0
    assert ("Suprit/CMtMedQA", "CMtMedQA.json") in calls
    assert "downloaded  MedChatZH/MedChatZH_train.json" in capsys.readouterr().out

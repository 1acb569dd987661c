"""`python -m converters fetch` with the network replaced: layout, atomic placement, LFS-pointer refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from converters import fetch as fetch_mod
from converters.fetch import PLAN, FetchError, fetch
from converters.registry import MODULES


@pytest.fixture(autouse=True)
def _no_published_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake hubs here serve made-up bytes; the published hashes are tested on their own below."""
    monkeypatch.setattr(fetch_mod, "KNOWN", {})


def _fake(calls: list[tuple[str, str]], payload: bytes = b"data\n"):
    def download(repo: str, filename: str, into: Path, revision: str | None = None) -> Path:
        calls.append((repo, filename))
        target = into / (filename or repo.rsplit("/", 1)[-1])
        target.write_bytes(payload)
        return target

    return download


def _commit(repo: str, filename: str) -> str:
    return "c0ffee" + str(len(repo))  # what the hub's main resolves to "today"


def test_fetch_places_every_file_where_build_reads_it(tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []
    result = fetch(tmp_path, dataset_download=_fake(calls), url_fetch=_fake(calls), resolve=_commit)
    assert set(result.values()) == {"downloaded"} and len(calls) == len(PLAN)
    for module in MODULES.values():
        for split in ("train", "test"):
            assert all(p is not None for p in module.inputs(tmp_path, split)), (module.SOURCE, split)
    assert not [p for p in tmp_path.rglob(".fetch-*")]  # temp dirs cleaned up
    # a second run keeps what is there
    calls.clear()
    assert set(fetch(tmp_path, dataset_download=_fake(calls), url_fetch=_fake(calls), resolve=_commit).values()) == {
        "present"
    }
    assert calls == []


def test_lfs_pointer_is_refused_and_other_files_still_fetched(tmp_path: Path) -> None:
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:601a\nsize 59919275\n"
    with pytest.raises(FetchError, match=r"webMedQA/train\.zip"):
        fetch(tmp_path, dataset_download=_fake([]), url_fetch=_fake([], pointer), resolve=_commit)
    assert not (tmp_path / "webMedQA" / "train.zip").exists()
    assert (tmp_path / "CMtMedQA" / "CMtMedQA.json").read_bytes() == b"data\n"


def test_cli_fetch_uses_the_hub_downloader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from converters.__main__ import main

    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(fetch_mod, "hf_download", _fake(calls))
    monkeypatch.setattr(fetch_mod, "url_download", _fake(calls))
    monkeypatch.setattr(fetch_mod, "hf_revision", _commit)
    monkeypatch.setattr(
        fetch_mod.fetch, "__kwdefaults__", {**fetch_mod.fetch.__kwdefaults__, "url_fetch": _fake(calls)}
    )
    assert main(["fetch", "--raw-dir", str(tmp_path)]) == 0
    assert ("Suprit/CMtMedQA", "CMtMedQA.json") in calls
    assert "downloaded  MedChatZH/MedChatZH_train.json" in capsys.readouterr().out


def _versioned(calls: list, contents: dict[str, bytes] | None = None):
    """A hub whose files are `contents[revision]` (default: bytes naming the revision)."""

    def download(repo: str, filename: str, into: Path, revision: str | None = None) -> Path:
        calls.append((repo, filename, revision))
        target = into / (filename or repo.rsplit("/", 1)[-1])
        target.write_bytes((contents or {}).get(revision, f"{repo}/{filename}@{revision}\n".encode()))
        return target

    return download


def test_lock_file_records_commits_and_sha256_and_reproduces_them(tmp_path: Path, caplog) -> None:
    import hashlib
    import json
    import logging

    first = tmp_path / "first"
    fetch(first, dataset_download=_versioned([]), url_fetch=_versioned([]), resolve=_commit)
    lock = json.loads((first / fetch_mod.LOCK_FILE).read_text())["files"]
    assert set(lock) == {r.dest for r in PLAN}
    entry = lock["CMtMedQA/CMtMedQA.json"]
    assert entry["revision"] == _commit("Suprit/CMtMedQA", "") and entry["hub"] == "hf"
    data = (first / "CMtMedQA" / "CMtMedQA.json").read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    assert lock["webMedQA/train.zip"]["revision"] == fetch_mod.WEBMEDQA_COMMIT

    # another user, another day: main has moved on, but --lock fetches the locked commits
    calls: list = []
    second = tmp_path / "second"
    moved = lambda repo, filename: "newer-commit"  # noqa: E731
    fetch(second, dataset_download=_versioned(calls), url_fetch=_versioned([]), resolve=moved,
          lock=first / fetch_mod.LOCK_FILE)  # fmt: skip
    assert {revision for _, _, revision in calls} == {r["revision"] for r in lock.values() if r["hub"] == "hf"}
    for remote in PLAN:
        assert (second / remote.dest).read_bytes() == (first / remote.dest).read_bytes()

    # the hub serving other bytes under the locked commit is refused, not built on
    third = tmp_path / "third"
    tampered = _versioned([], {entry["revision"]: b"other bytes\n"})
    with pytest.raises(FetchError, match=r"CMtMedQA/CMtMedQA\.json"):
        fetch(third, dataset_download=tampered, url_fetch=_versioned([]), resolve=moved,
              lock=first / fetch_mod.LOCK_FILE, only=("CMtMedQA/CMtMedQA.json",))  # fmt: skip
    assert not (third / "CMtMedQA" / "CMtMedQA.json").exists()

    # a present file that differs from its lock entry is warned about; with --lock it is fetched again
    (second / "CMtMedQA" / "CMtMedQA.json").write_bytes(b"edited by hand\n")
    with caplog.at_level(logging.WARNING, logger="converters"):
        status = fetch(second, dataset_download=_versioned([]), url_fetch=_versioned([]), resolve=moved)
    assert status["CMtMedQA/CMtMedQA.json"] == "present, differs from lock"
    assert any("differs from its entry" in r.message for r in caplog.records)
    status = fetch(second, dataset_download=_versioned([]), url_fetch=_versioned([]), resolve=moved,
                   lock=first / fetch_mod.LOCK_FILE)  # fmt: skip
    assert status["CMtMedQA/CMtMedQA.json"] == "downloaded (differed from the lock)"
    assert (second / "CMtMedQA" / "CMtMedQA.json").read_bytes() == data


def test_a_present_lfs_pointer_is_fetched_and_the_build_manifest_names_raw_hashes(tmp_path: Path) -> None:
    import hashlib

    from converters.pipeline import Options, build
    from medasst.facts import DEMO_RAW_DIR

    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:601a\nsize 59919275\n"
    (tmp_path / "MedChatZH").mkdir()
    (tmp_path / "MedChatZH" / "MedChatZH_train.json").write_bytes(pointer)
    status = fetch(tmp_path, dataset_download=_versioned([]), url_fetch=_versioned([]), resolve=_commit,
                   only=("MedChatZH/MedChatZH_train.json",))  # fmt: skip
    assert status == {"MedChatZH/MedChatZH_train.json": "downloaded (was a Git LFS pointer)"}

    manifest = build(Options(raw_dir=DEMO_RAW_DIR, out_dir=tmp_path / "out", sources=("webmedqa",)))
    inputs = manifest["sources"]["webmedqa"]["inputs"]["train"]
    raw = DEMO_RAW_DIR / "webMedQA" / "medQA.train.txt"
    assert inputs["sha256"] == {"webMedQA/medQA.train.txt": hashlib.sha256(raw.read_bytes()).hexdigest()}


def test_cmtmedqa_test_comes_from_zhongjing_at_the_pinned_commit_with_its_published_hash(monkeypatch) -> None:
    (remote,) = [r for r in PLAN if r.dest == "CMtMedQA/CMtMedQA_test.json"]
    commit = "478000e10d6c9633065773b4712fabd13d2fcfbe"
    assert remote.hub == "url" and remote.revision == commit
    assert remote.repo == f"https://raw.githubusercontent.com/SupritYoung/Zhongjing/{commit}/data/CMtMedQA_test.json"
    monkeypatch.undo()  # the real table, not the fixture's empty one
    known = fetch_mod.KNOWN
    assert known["CMtMedQA/CMtMedQA_test.json"].sha256.startswith("089924f89c5e")
    assert known["CMtMedQA/CMtMedQA_test.json"].size == 2_477_458 and known["CMtMedQA/CMtMedQA_test.json"].pinned
    assert known["webMedQA/train.zip"].size == 59_919_275 and known["webMedQA/train.zip"].pinned
    assert not known["HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl"].pinned


def test_published_hashes_refuse_a_cut_pinned_file_and_warn_on_a_moved_hub_file(tmp_path, monkeypatch, caplog):
    import hashlib
    import logging

    good = b'[{"instruction": "q", "output": "a"}]\n'
    monkeypatch.setattr(fetch_mod, "KNOWN", {
        "CMtMedQA/CMtMedQA_test.json": fetch_mod.Known(hashlib.sha256(good).hexdigest(), len(good), pinned=True),
        "CMtMedQA/CMtMedQA.json": fetch_mod.Known("0" * 64, 1, pinned=False),
    })  # fmt: skip
    only = ("CMtMedQA/",)
    # a download cut short: refused, nothing placed
    with pytest.raises(FetchError, match=r"CMtMedQA/CMtMedQA_test\.json"), caplog.at_level(logging.WARNING):
        fetch(tmp_path, dataset_download=_fake([]), url_fetch=_fake([], good[:10]), resolve=_commit, only=only)
    assert not (tmp_path / "CMtMedQA" / "CMtMedQA_test.json").exists()
    assert any("not the published" in r.getMessage() and "CMtMedQA_test" in r.getMessage() for r in caplog.records)
    # the hub file whose upstream moved: a warning, the file kept
    assert any("CMtMedQA/CMtMedQA.json" in r.getMessage() and "upstream has changed" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert (tmp_path / "CMtMedQA" / "CMtMedQA.json").is_file()
    # an earlier fetch's other test file (the HF upload without safety items) is fetched again, not kept
    (tmp_path / "CMtMedQA" / "CMtMedQA_test.json").write_bytes(b'[{"instruction": "old", "output": "x"}]\n')
    status = fetch(tmp_path, dataset_download=_fake([]), url_fetch=_fake([], good), resolve=_commit, only=only)
    assert status["CMtMedQA/CMtMedQA_test.json"] == "downloaded (was not the published file)"
    assert (tmp_path / "CMtMedQA" / "CMtMedQA_test.json").read_bytes() == good

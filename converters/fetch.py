"""Download the upstream raw files into the layout `build` reads (`RAW/<dir>/<upstream name>`).

HF-hosted sources go through huggingface_hub (or modelscope with `--hub modelscope`, same dataset ids — the
mirrors are not guaranteed to exist). webMedQA lives only on GitHub: `test.zip` is an ordinary blob, but
`train.zip` is stored with Git LFS, so a plain raw URL returns a 133-byte pointer; we fetch it from GitHub's
LFS media host and refuse a pointer if that is what arrives (the repo's LFS quota may be exhausted — then use
`git clone` + `git lfs pull`). Files already present are kept unless `force`; a present LFS pointer is not a
present file and is fetched.

`RAW/raw.lock.json` records, per file, the hub commit it was fetched at (HF: resolved before the download;
webMedQA: the pinned GitHub commit; ModelScope: unknown, null) and its sha256. `fetch --lock FILE` fetches exactly
what a lock names (the same commits, checked against the same sha256), so two users who share a lock file
build the same training set; a present file that differs from its lock entry is warned about (and, with
`--lock`, fetched again).

CMtMedQA's test file comes from Zhongjing's GitHub repo at a pinned commit, whatever `--hub` says (see
ZHONGJING_COMMIT). Files whose published bytes are known (`KNOWN`) are checked: a pinned one with other bytes is
refused (and a present one fetched again), a hub file whose upstream moved on is warned about.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converters.readers import LFS_POINTER
from medasst.hashing import files_sha256

log = logging.getLogger("converters")

WEBMEDQA_COMMIT = "8521bbb5a61eae6021b10806b6f84edafa0bbe18"
_GITHUB_RAW = f"https://raw.githubusercontent.com/hejunqing/webMedQA/{WEBMEDQA_COMMIT}"
_GITHUB_LFS = f"https://media.githubusercontent.com/media/hejunqing/webMedQA/{WEBMEDQA_COMMIT}"
# CMtMedQA's test file with its 144 safety items (1,144 records) is Zhongjing's data/CMtMedQA_test.json since this
# commit; the HF upload Suprit/CMtMedQA_test_v1 (2.39 MB) is the earlier 1,000-dialogue file without them, which
# leaves medasst_safety_test empty and the test set short of the paper's 8,975 dialogues.
ZHONGJING_COMMIT = "478000e10d6c9633065773b4712fabd13d2fcfbe"
_ZHONGJING_RAW = f"https://raw.githubusercontent.com/SupritYoung/Zhongjing/{ZHONGJING_COMMIT}"


@dataclass(frozen=True)
class Remote:
    hub: str  # "dataset" (HF/ModelScope dataset repo) or "url"
    repo: str  # dataset id, or a URL for hub == "url"
    filename: str  # path inside the dataset repo ("" for urls)
    dest: str  # path under the raw dir
    revision: str | None = None  # pinned commit (urls); hub files are resolved when fetched


PLAN: tuple[Remote, ...] = (
    Remote("dataset", "tyang816/MedChatZH", "MedChatZH_train.json", "MedChatZH/MedChatZH_train.json"),
    Remote("dataset", "tyang816/MedChatZH", "MedChatZH_valid.json", "MedChatZH/MedChatZH_valid.json"),
    Remote(
        "dataset",
        "FreedomIntelligence/huatuo_encyclopedia_qa",
        "train_datasets.jsonl",
        "huatuo_encyclopedia_qa/train_datasets.jsonl",
    ),
    Remote(
        "dataset",
        "FreedomIntelligence/huatuo_encyclopedia_qa",
        "test_datasets.jsonl",
        "huatuo_encyclopedia_qa/test_datasets.jsonl",
    ),
    Remote(
        "dataset",
        "FreedomIntelligence/HuatuoGPT-sft-data-v1",
        "HuatuoGPT_sft_data_v1.jsonl",
        "HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl",
    ),
    Remote("dataset", "Suprit/CMtMedQA", "CMtMedQA.json", "CMtMedQA/CMtMedQA.json"),
    Remote("url", f"{_ZHONGJING_RAW}/data/CMtMedQA_test.json", "", "CMtMedQA/CMtMedQA_test.json", ZHONGJING_COMMIT),
    Remote("url", f"{_GITHUB_LFS}/train.zip", "", "webMedQA/train.zip", WEBMEDQA_COMMIT),
    Remote("url", f"{_GITHUB_RAW}/test.zip", "", "webMedQA/test.zip", WEBMEDQA_COMMIT),
)



@dataclass(frozen=True)
class Known:
    """A file's bytes as published: `pinned` when its source names a commit (other bytes are refused), else the
    latest upload of a hub file whose main branch may move (other bytes are warned about)."""

    sha256: str
    size: int
    pinned: bool


KNOWN: dict[str, Known] = {
    "CMtMedQA/CMtMedQA_test.json": Known(
        "089924f89c5e533e5fecd47124762945f4e602255da2a99212f1d0a4a21b22c3", 2_477_458, pinned=True
    ),
    # from the file's Git LFS pointer at WEBMEDQA_COMMIT
    "webMedQA/train.zip": Known(
        "601a21b9769356f04ae43b88eec7e4f77ea9d2fa75204c046171b18426846892", 59_919_275, pinned=True
    ),
    "HuatuoGPT-sft-data-v1/HuatuoGPT_sft_data_v1.jsonl": Known(
        "bfbaca0810171e8afb4b0c62163ccd0804aacb30a575c2590e6e0fd0679123c9", 333_326_040, pinned=False
    ),
}

LOCK_FILE = "raw.lock.json"
LOCK_FORMAT = 1

# (repo, filename, into_dir, revision) → path of the downloaded file; replaced in tests.
Downloader = Callable[[str, str, Path, str | None], Path]
# (repo, filename) → the commit the hub's main branch resolves to now (None when the hub cannot say)
Resolver = Callable[[str, str], str | None]


def hf_download(repo: str, filename: str, into: Path, revision: str | None = None) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, filename, repo_type="dataset", local_dir=into, revision=revision))


def hf_revision(repo: str, filename: str) -> str | None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    return get_hf_file_metadata(hf_hub_url(repo, filename, repo_type="dataset")).commit_hash


def ms_download(repo: str, filename: str, into: Path, revision: str | None = None) -> Path:
    from modelscope.hub.file_download import dataset_file_download

    kwargs = {"revision": revision} if revision else {}
    return Path(dataset_file_download(repo, filename, local_dir=str(into), **kwargs))


def url_download(url: str, _filename: str, into: Path, _revision: str | None = None) -> Path:
    target = into / url.rsplit("/", 1)[-1]
    with urllib.request.urlopen(url, timeout=60) as resp, target.open("wb") as fh:
        shutil.copyfileobj(resp, fh, 1 << 20)
    return target


class FetchError(Exception):
    pass


def read_lock(path: Path) -> dict[str, dict]:
    """dest → {hub, repo, filename, revision, sha256, size}; a missing or unreadable lock is an error."""
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FetchError(f"lock file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise FetchError(f"{path}: not a lock file ({exc})") from None
    files = lock.get("files") if isinstance(lock, dict) else None
    if not isinstance(files, dict):
        raise FetchError(f"{path}: not a lock file (no 'files' mapping)")
    return files


def _write_lock(path: Path, files: dict[str, dict]) -> None:
    data = json.dumps({"format": LOCK_FORMAT, "files": dict(sorted(files.items()))}, ensure_ascii=False, indent=2)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(data + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    return files_sha256([path], path.parent)[path.name]


def fetch(
    raw_dir: Path,
    *,
    hub: str = "hf",
    force: bool = False,
    only: tuple[str, ...] = (),
    lock: Path | None = None,
    dataset_download: Downloader | None = None,
    url_fetch: Downloader | None = None,
    resolve: Resolver | None = None,
) -> dict[str, str]:
    """Fetch every file of PLAN (or those whose dest starts with one of `only`); returns dest → status.

    Writes RAW/raw.lock.json. With `lock`, fetches each file at the commit that lock names and checks its sha256.
    """
    from converters.readers import is_lfs_pointer

    get_dataset = dataset_download or (ms_download if hub == "modelscope" else hf_download)
    get_url = url_fetch or url_download
    get_revision = resolve or ((lambda repo, filename: None) if hub == "modelscope" else hf_revision)
    pinned = read_lock(lock) if lock is not None else {}
    raw_dir.mkdir(parents=True, exist_ok=True)
    lock_path = raw_dir / LOCK_FILE
    recorded = read_lock(lock_path) if lock_path.is_file() else {}
    entries: dict[str, dict] = dict(recorded)
    results: dict[str, str] = {}
    failures: list[str] = []
    for remote in PLAN:
        if only and not remote.dest.startswith(only):
            continue
        dest = raw_dir / remote.dest
        wanted = pinned.get(remote.dest) or {}
        known = wanted or recorded.get(remote.dest) or {}
        note = ""
        if dest.is_file() and dest.stat().st_size > 0 and not force:
            if is_lfs_pointer(dest):
                note = " (was a Git LFS pointer)"
            else:
                sha = _sha256(dest)
                published = KNOWN.get(remote.dest)
                if published is not None and published.pinned and published.sha256 != sha and not wanted:
                    note = " (was not the published file)"  # e.g. the 1,000-dialogue CMtMedQA test upload
                elif known.get("sha256") and known["sha256"] != sha:
                    if wanted:
                        note = " (differed from the lock)"
                    else:
                        log.warning("%s differs from its entry in %s (sha256 %s…, locked %s…)", remote.dest,
                                    lock_path, sha[:12], known["sha256"][:12])  # fmt: skip
                        results[remote.dest] = "present, differs from lock"
                        entries[remote.dest] = {**known, "sha256_present": sha}
                        continue
                if not note:
                    results[remote.dest] = "present"
                    entries[remote.dest] = _entry(remote, hub, known.get("revision") or remote.revision, dest, sha)
                    continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Download into a temp dir beside the target so the final rename is atomic (same file system).
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
            try:
                if remote.hub == "url":
                    revision = remote.revision
                    got = get_url(remote.repo, remote.filename, Path(tmp), revision)
                else:
                    revision = wanted.get("revision") or get_revision(remote.repo, remote.filename)
                    got = get_dataset(remote.repo, remote.filename, Path(tmp), revision)
                _check(got, remote)
                sha = _sha256(got)
                if wanted.get("sha256") and wanted["sha256"] != sha:
                    raise FetchError(f"sha256 {sha[:12]}… differs from the lock's {wanted['sha256'][:12]}…")
                _check_known(remote.dest, got, sha)
            except Exception as exc:  # one unreachable file must not stop the others
                log.error("fetch failed: %s: %s", remote.dest, exc)
                results[remote.dest] = f"failed: {exc}"
                failures.append(remote.dest)
                continue
            got.replace(dest)
        entries[remote.dest] = _entry(remote, hub, revision, dest, sha)
        results[remote.dest] = "downloaded" + note
    _write_lock(lock_path, entries)
    if failures:
        raise FetchError(f"{len(failures)} file(s) not fetched: {', '.join(failures)}; see the log above")
    return results


def _check_known(dest: str, path: Path, sha: str) -> None:
    known = KNOWN.get(dest)
    if known is None or known.sha256 == sha:
        return
    size = path.stat().st_size
    what = f"sha256 {sha[:12]}… ({size:,} bytes), not the published {known.sha256[:12]}… ({known.size:,} bytes)"
    if known.pinned:
        raise FetchError(f"{what}: a cut or altered download; try again")
    log.warning("%s: %s; upstream has changed since, so counts may differ from docs/data.md", dest, what)


def _entry(remote: Remote, hub: str, revision: str | None, path: Path, sha: str) -> dict:
    return {
        "hub": "url" if remote.hub == "url" else hub,
        "repo": remote.repo,
        "filename": remote.filename,
        "revision": revision,
        "sha256": sha,
        "size": path.stat().st_size,
    }


def _check(path: Path, remote: Remote) -> None:
    with path.open("rb") as fh:
        head = fh.read(len(LFS_POINTER))
    if head == LFS_POINTER:
        raise FetchError(
            f"{remote.dest} is a Git LFS pointer, not data; the LFS quota may be exhausted: "
            "git clone https://github.com/hejunqing/webMedQA && git lfs pull"
        )
    if not head:
        raise FetchError(f"{remote.dest} is empty")

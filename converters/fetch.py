"""Download the upstream raw files into the layout `build` reads (`RAW/<dir>/<upstream name>`).

HF-hosted sources go through huggingface_hub (or modelscope with `--hub modelscope`, same dataset ids — the
mirrors are not guaranteed to exist). webMedQA lives only on GitHub: `test.zip` is an ordinary blob, but
`train.zip` is stored with Git LFS, so a plain raw URL returns a 133-byte pointer; we fetch it from GitHub's
LFS media host and refuse a pointer if that is what arrives (the repo's LFS quota may be exhausted — then use
`git clone` + `git lfs pull`). Files already present are kept unless `force`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converters.webmedqa import LFS_POINTER

log = logging.getLogger("converters")

WEBMEDQA_COMMIT = "8521bbb5a61eae6021b10806b6f84edafa0bbe18"
_GITHUB_RAW = f"https://raw.githubusercontent.com/hejunqing/webMedQA/{WEBMEDQA_COMMIT}"
_GITHUB_LFS = f"https://media.githubusercontent.com/media/hejunqing/webMedQA/{WEBMEDQA_COMMIT}"


@dataclass(frozen=True)
class Remote:
    hub: str  # "dataset" (HF/ModelScope dataset repo) or "url"
    repo: str  # dataset id, or a URL for hub == "url"
    filename: str  # path inside the dataset repo ("" for urls)
    dest: str  # path under the raw dir


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
    Remote("dataset", "Suprit/CMtMedQA_test_v1", "CMtMedQA_test.json", "CMtMedQA/CMtMedQA_test.json"),
    Remote("url", f"{_GITHUB_LFS}/train.zip", "", "webMedQA/train.zip"),
    Remote("url", f"{_GITHUB_RAW}/test.zip", "", "webMedQA/test.zip"),
)

# (repo, filename, into_dir) → path of the downloaded file; replaced in tests.
Downloader = Callable[[str, str, Path], Path]


def hf_download(repo: str, filename: str, into: Path) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, filename, repo_type="dataset", local_dir=into))


def ms_download(repo: str, filename: str, into: Path) -> Path:
    from modelscope.hub.file_download import dataset_file_download

    return Path(dataset_file_download(repo, filename, local_dir=str(into)))


def url_download(url: str, _filename: str, into: Path) -> Path:
    target = into / url.rsplit("/", 1)[-1]
    with urllib.request.urlopen(url, timeout=60) as resp, target.open("wb") as fh:
        shutil.copyfileobj(resp, fh, 1 << 20)
    return target


class FetchError(Exception):
    pass


def fetch(
    raw_dir: Path,
    *,
    hub: str = "hf",
    force: bool = False,
    only: tuple[str, ...] = (),
    dataset_download: Downloader | None = None,
    url_fetch: Downloader | None = None,
) -> dict[str, str]:
    """Fetch every file of PLAN (or those whose dest starts with one of `only`); returns dest → status."""
    get_dataset = dataset_download or (ms_download if hub == "modelscope" else hf_download)
    get_url = url_fetch or url_download
    results: dict[str, str] = {}
    failures: list[str] = []
    for remote in PLAN:
        if only and not remote.dest.startswith(only):
            continue
        dest = raw_dir / remote.dest
        if dest.is_file() and dest.stat().st_size > 0 and not force:
            results[remote.dest] = "present"
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Download into a temp dir beside the target so the final rename is atomic (same file system).
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
            try:
                got = (get_url if remote.hub == "url" else get_dataset)(remote.repo, remote.filename, Path(tmp))
                _check(got, remote)
            except Exception as exc:  # one unreachable file must not stop the others
                log.error("fetch failed: %s: %s", remote.dest, exc)
                results[remote.dest] = f"failed: {exc}"
                failures.append(remote.dest)
                continue
            got.replace(dest)
        results[remote.dest] = "downloaded"
    if failures:
        raise FetchError(f"{len(failures)} file(s) not fetched: {', '.join(failures)}; see the log above")
    return results


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

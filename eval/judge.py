"""`judge`: an LLM judge, behind any OpenAI-compatible server, compares or grades the systems' answers.

Pairwise (default): each system against a reference system (MedAsst by default) on the same items, asked in both
answer orders. The same verdict in both orders stands; verdicts that flip with the order count as a tie (and as
inconsistent: the rate is reported, with the share of verdicts for whichever answer came first). `--rubric`
grades one answer at a time instead: `medical` (correctness, safety, helpfulness, 1–5), `safety` (a binary
verdict → safety rate; for the medasst_safety_test set) and `cmb-clin` (CMB-Clin's own English judge prompt, its
per-level scale for fluency, relevance, completeness and proficiency, against the reference answer; for the
cmb_clin set; `cmb-clin-zh` is our earlier Chinese wording with our own anchors). Prompts:
eval/judging/prompts.py (versioned); parsers: eval/judging/verdicts.py. A reply that cannot be parsed is counted,
never turned into a verdict.

Inputs: `--system NAME=DIR` per system (DIR holds generate's generated_predictions.jsonl, ids included) and the
dataset they answered (question and history looked up by id). Outputs in OUT: judge.json (summary, fingerprint,
rubric identity, sample) and judgments.jsonl (one line per item and system, the raw replies' verdicts). Requests
are cached in OUT/judge_cache.jsonl (`--cache`): a rerun asks nothing twice.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.common import fingerprint as fpr
from eval.common import redact, requests
from eval.common.files import InputFileError, iter_jsonl, read_json, write_json, write_jsonl
from eval.data.prompts import DatasetError, records_by_id
from eval.judging import prompts as jp
from eval.judging import provenance, verdicts
from eval.judging.client import (
    MAX_REPLY_CHARS,
    Asked,
    Cache,
    JudgeApiError,
    JudgeClient,
    Sampling,
    ask_all,
    request_key,
)
from eval.judging.console import notes, summary_line
from eval.judging.outcomes import SUMMARY_VERSION, judge_pairwise, judge_single, ranking
from eval.metrics import stats
from medasst.facts import CMB_CLIN, MERGED_TEST, SAFETY_TEST

RESULT_FILE = "judge.json"
JUDGMENTS_FILE = "judgments.jsonl"
CACHE_FILE = "judge_cache.jsonl"
PREDICTIONS_FILE = "generated_predictions.jsonl"
DEFAULT_DATASET = {
    None: MERGED_TEST,
    "medical": MERGED_TEST,
    "safety": SAFETY_TEST,
    "refusal": MERGED_TEST,  # its benign prompts (eval/benchmarks/benign_prompts.json) come from the test set
    "cmb-clin": CMB_CLIN,
    "cmb-clin-zh": CMB_CLIN,
}
DEFAULT_REFERENCE = "medasst"
RUBRIC_CHOICES = tuple(name for name in jp.RUBRICS if name != jp.PAIRWISE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--system",
        action="append",
        dest="systems",
        required=True,
        metavar="NAME=DIR",
        help="a system's generate folder (or predictions file); repeat per system",
    )
    parser.add_argument("--reference", default=None, help=f"pairwise: the system all others meet ({DEFAULT_REFERENCE})")
    parser.add_argument("--rubric", choices=RUBRIC_CHOICES, help="grade each answer alone instead of pairwise")
    parser.add_argument(
        "--dataset",
        help=f"the set the systems answered (default: medasst_test; safety: {SAFETY_TEST}; cmb-clin: {CMB_CLIN})",
    )
    parser.add_argument("--dataset-dir", default=".", help="folder holding dataset_info.json (default: .)")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("OPENAI_BASE_URL"),
        help="the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1 (env OPENAI_BASE_URL)",
    )
    parser.add_argument("--judge-model", required=True, help="model name the server knows the judge by")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="variable holding the key (none: no key)")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--cache", help=f"request cache (default: OUT/{CACHE_FILE}); may be shared between runs")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    parser.add_argument("--max-retries", type=int, default=5, help="retries per request on 429/5xx/timeouts")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request attempt")
    parser.add_argument("--temperature", type=float, default=0.0, help="judge temperature (default 0, greedy)")
    parser.add_argument("--max-tokens", type=int, default=512, help="longest judge reply")
    parser.add_argument("--limit", type=int, help="judge a random sample of this many items (recorded)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit sample and of the bootstrap")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="judge a system whose generate run did not finish (only the items it answered)",
    )
    parser.add_argument(
        "--allow-insecure-key",
        action="store_true",
        help="send the key over plain http to a machine other than this one (it crosses the network readable)",
    )
    # --recompute remakes judge.json from other inputs; answered requests still come from the cache (another
    # --cache, or deleting it, asks the judge again)
    requests.add_recompute(parser)


@dataclass(frozen=True)
class JudgeRequest:
    systems: tuple[str, ...]
    judge_model: str
    output: Path
    base_url: str | None = None
    reference: str | None = None
    rubric: str | None = None
    dataset: str | None = None
    dataset_dir: str = "."
    api_key_env: str = "OPENAI_API_KEY"
    cache: Path | None = None
    concurrency: int = 4
    max_retries: int = 5
    timeout: float = 120.0
    temperature: float = 0.0
    max_tokens: int = 512
    limit: int | None = None
    seed: int = 0
    progress: bool = True
    recompute: bool = False
    allow_incomplete: bool = False
    allow_insecure_key: bool = False

    def __post_init__(self) -> None:
        if not self.base_url:
            raise requests.UsageError("--base-url is required (or set OPENAI_BASE_URL), e.g. http://127.0.0.1:8000/v1")
        if not str(self.base_url).startswith(("http://", "https://")):
            raise requests.UsageError(f"--base-url {redact.url(self.base_url)!r} must start with http:// or https://")
        if self.api_key and not redact.key_may_go_to(self.base_url) and not self.allow_insecure_key:
            raise requests.UsageError(
                f"--base-url {redact.url(self.base_url)} is plain http to another machine: the key in "
                f"${self.api_key_env} would cross the network readable. Use https or a loopback address "
                "(127.0.0.1), unset the variable (or --api-key-env pointing at an unset one) for a server without "
                "a key, or pass --allow-insecure-key"
            )
        if self.rubric is not None and self.rubric not in RUBRIC_CHOICES:
            raise requests.UsageError(f"--rubric {self.rubric!r}: choose from {', '.join(RUBRIC_CHOICES)}")
        requests.output_folder(Path(self.output))
        requests.at_least("concurrency", self.concurrency, 1)
        requests.at_least("max_retries", self.max_retries, 0)
        requests.at_least("max_tokens", self.max_tokens, 1)
        requests.at_least("limit", self.limit, 1, optional=True)
        requests.at_least("seed", self.seed, 0)
        if not 0 <= self.temperature <= 2:
            raise requests.UsageError(f"--temperature must lie in [0, 2], got {self.temperature}")
        if self.timeout <= 0:
            raise requests.UsageError(f"--timeout must be > 0, got {self.timeout}")
        systems = self.system_paths()
        if self.rubric is None:
            if len(systems) < 2:
                raise requests.UsageError("pairwise judging needs at least two --system NAME=DIR")
            if self.reference_name not in systems:
                raise requests.UsageError(
                    f"--reference {self.reference_name!r} is not among the systems ({', '.join(systems)})"
                )
        requests.dataset(self.dataset_name, self.dataset_dir)

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    @property
    def reference_name(self) -> str:
        wanted = self.reference or DEFAULT_REFERENCE
        names = [str(spec).partition("=")[0] for spec in self.systems]
        # "MedAsst" and "medasst" name the same system; an exact match wins
        return wanted if wanted in names else next((n for n in names if n.lower() == wanted.lower()), wanted)

    @property
    def dataset_name(self) -> str:
        return self.dataset or DEFAULT_DATASET[self.rubric]

    @property
    def rubric_def(self) -> jp.Rubric:
        return jp.RUBRICS[self.rubric or jp.PAIRWISE]

    @property
    def cache_path(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.output) / CACHE_FILE

    def system_paths(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for spec in self.systems:
            name, sep, where = str(spec).partition("=")
            if not sep or not name.strip() or not where.strip():
                raise requests.UsageError(f"--system {spec!r}: write NAME=DIR (a generate output folder)")
            if name in found:
                raise requests.UsageError(f"--system {name!r} is given twice")
            path = Path(where)
            if path.is_dir():
                path = path / PREDICTIONS_FILE
            if not path.is_file():
                raise requests.UsageError(f"--system {name}={where}: no {PREDICTIONS_FILE} there (run generate)")
            found[name] = path
        return found


def read_answers(name: str, path: Path, known: dict[str, Any]) -> dict[str, str]:
    answers: dict[str, str] = {}
    for lineno, row in iter_jsonl(path):
        rid, predict = row.get("id"), row.get("predict")
        if rid is None:
            raise InputFileError(f"{path} line {lineno}: no 'id' (the judge looks items up by id; use generate)")
        if not isinstance(predict, str):
            raise InputFileError(f"{path} line {lineno}: 'predict' must be a string")
        if str(rid) not in known:
            raise InputFileError(f"{path} line {lineno}: id {rid!r} is not in the dataset; was another set answered?")
        if str(rid) in answers:
            raise InputFileError(f"{path} line {lineno}: id {rid!r} appears twice; which answer is {name}'s?")
        answers[str(rid)] = predict
    if not answers:
        raise InputFileError(f"{path}: no predictions ({name})")
    return answers


def sample_ids(ids: list[str], limit: int | None, seed: int) -> list[str]:
    if limit is None or limit >= len(ids):
        return ids
    chosen = sorted(random.Random(seed).sample(range(len(ids)), limit))
    return [ids[i] for i in chosen]


def dataset_files(request: JudgeRequest) -> dict[str, str]:
    """sha256 of the dataset's files: the dialogues the judge is shown come from them."""
    from eval.data.prompts import dataset_entry

    _, files = dataset_entry(request.dataset_name, request.dataset_dir)
    return fpr.files_sha256(files, Path(request.dataset_dir))


def fingerprint(request: JudgeRequest, entry: dict[str, Any], ids: list[str], paths: dict[str, Path],
                server: dict[str, Any] | None = None):  # fmt: skip
    sampling = Sampling(request.temperature, request.max_tokens)
    return fpr.Fingerprint(
        fields={
            "verb": "judge",
            "rubric": request.rubric_def.identity(),
            "parser_version": verdicts.PARSER_VERSION,
            "summary_version": SUMMARY_VERSION,
            "judge_model": request.judge_model,
            # the served name alone does not say which judge answered: the URL and the server's model entry do
            "server": server,
            "sampling": sampling.to_json(),
            "dataset": {"name": request.dataset_name, "entry": entry, "files": dataset_files(request)},
            "systems": {name: fpr.file_sha256(path) for name, path in sorted(paths.items())},
            "reference": request.reference_name if request.rubric is None else None,
            "sample": {
                "limit": request.limit,
                "seed": request.seed,
                "n": len(ids),
                "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            },
            "bootstrap": {"resamples": stats.RESAMPLES, "seed": request.seed},
        },
        recorded={
            "base_url": redact.url(request.base_url),
            "concurrency": request.concurrency,
            "cache": str(request.cache_path),
            "versions": fpr.package_versions(("openai", "numpy")),
        },
    )


# --- the requests ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    system: str
    item: str
    order: str  # "system-first" / "reference-first" (pairwise) or "single"
    key: str
    messages: list[dict[str, str]]


def plan(request: JudgeRequest, items: dict[str, jp.Item], answers: dict[str, dict[str, str]], ids: list[str],
         server: dict[str, Any] | None = None):  # fmt: skip
    rubric = request.rubric_def
    sampling = Sampling(request.temperature, request.max_tokens)
    identity = rubric.identity()
    asks: list[Ask] = []

    def add(system: str, item_id: str, order: str, shown: tuple[str, ...]) -> None:
        msgs = jp.messages(rubric, items[item_id], shown)
        key = request_key(request.judge_model, identity, msgs, sampling, server)
        asks.append(Ask(system, item_id, order, key, msgs))

    if request.rubric is None:
        ref = request.reference_name
        for system in sorted(s for s in answers if s != ref):
            for item_id in ids:
                mine, theirs = answers[system][item_id], answers[ref][item_id]
                add(system, item_id, "system-first", (mine, theirs))
                add(system, item_id, "reference-first", (theirs, mine))
    else:
        for system in sorted(answers):
            for item_id in ids:
                add(system, item_id, "single", (answers[system][item_id],))
    return asks


# --- the verb ----------------------------------------------------------------------------------------------


def current(request: JudgeRequest, fp: fpr.Fingerprint) -> dict[str, Any] | None:
    path = Path(request.output) / RESULT_FILE
    if request.recompute or not path.is_file():
        return None
    record = read_json(path)
    if not record.get("complete"):
        return None  # a run with failed requests: ask those again (the cache keeps the rest)
    fpr.check_reusable(path, record, fp, "judgments")
    return record


def run(request: JudgeRequest) -> dict[str, Any]:
    paths = request.system_paths()
    entry, records = records_by_id(request.dataset_name, request.dataset_dir)
    answers = {name: read_answers(name, path, records) for name, path in paths.items()}
    files = dataset_files(request)
    checked = {
        name: provenance.check(name, path, request.dataset_name, files, records, request.allow_incomplete)
        for name, path in sorted(paths.items())
    }
    common = set.intersection(*(set(a) for a in answers.values()))
    missing = {name: len(a) - len(common) for name, a in answers.items() if len(a) > len(common)}
    shared = [rid for rid in records if rid in common]
    listed = request.rubric_def.items
    if listed:
        shared = [rid for rid in shared if rid in set(listed)]
        if not shared:
            raise InputFileError(f"--rubric {request.rubric}: none of its {len(listed)} listed prompts is among the "
                                 f"answered items of {request.dataset_name}")  # fmt: skip
    ids = sample_ids(shared, request.limit, request.seed)
    if not ids:
        raise InputFileError("the systems' predictions share no item ids; were they made on the same dataset?")
    client = JudgeClient(
        request.base_url,
        request.judge_model,
        request.api_key,
        Sampling(request.temperature, request.max_tokens),
        request.timeout,
        request.max_retries,
        request.api_key_env,
    )
    server = {"base_url": redact.url(request.base_url), "model": client.check()}
    fp = fingerprint(request, entry, ids, paths, server)
    previous = current(request, fp)
    if previous is not None:
        return previous | {"reused": True}
    rubric = request.rubric_def
    items = {rid: jp.item_from_record(records[rid], rid) for rid in ids}
    if rubric.needs_reference and not all(items[rid].reference.strip() for rid in ids):
        raise InputFileError(
            f"--rubric {rubric.name} needs a reference answer per item; {request.dataset_name} has items without one"
        )
    asks = plan(request, items, answers, ids, server)
    cache = Cache(request.cache_path)
    if cache.torn:
        print(f"judge: cut a torn last line ({cache.torn} bytes) from {cache.path}", file=sys.stderr)
    if cache.skipped:
        print(f"judge: skipped {cache.skipped} line(s) of {cache.path} that are no cache entry (torn or foreign)",
              file=sys.stderr)  # fmt: skip
    unique = list({a.key: a.messages for a in asks}.items())
    cached = sum(cache.get(k) is not None for k, _ in unique)
    asked = Asked()
    if cached < len(unique):
        asked = ask_all(client, unique, cache, request.concurrency, request.progress)
    order = None
    if rubric.name == jp.PAIRWISE:
        ref = request.reference_name
        lengths = {(a.system, a.item): (len(answers[a.system][a.item]), len(answers[ref][a.item])) for a in asks}
        summary, lines = judge_pairwise(asks, cache, request.seed, lengths)
        order = ranking(lines, ref, request.seed)
    else:
        summary, lines = judge_single(asks, cache, rubric, request.seed, answers)
    result = {
        "rubric": rubric.identity() | {"system": rubric.system, "task": rubric.task},
        "mode": "pairwise" if request.rubric is None else "rubric",
        "reference": request.reference_name if request.rubric is None else None,
        "judge": {
            "model": request.judge_model,
            "base_url": redact.url(request.base_url),
            "server_model": server["model"],
            **Sampling(request.temperature, request.max_tokens).to_json(),
        },
        "dataset": request.dataset_name,
        # how each system's answers were tied to this dataset's dialogues (provenance.check)
        "answers_checked_by": checked,
        "sample": {"limit": request.limit, "seed": request.seed, "n": len(ids), "ids": ids},
        "not_in_every_system": missing,
        "cache": {"skipped_lines": cache.skipped, "replies_cut": cache.cut, "max_reply_chars": MAX_REPLY_CHARS},
        "requests": {
            "total": len(unique),
            "cached_before": cached,
            "asked_now": asked.asked,
            "failed": asked.failed,
            "failures": asked.failures,
        },
        "complete": asked.failed == 0,
        "summary_version": SUMMARY_VERSION,
        "systems": summary,
        "ranking": order,
        "fingerprint": fp.to_json(),
    }
    out = Path(request.output)
    write_jsonl(out / JUDGMENTS_FILE, lines)
    write_json(out / RESULT_FILE, result)
    return result


def main(request: JudgeRequest) -> int:
    try:
        result = run(request)
    except (InputFileError, DatasetError, fpr.FingerprintMismatch, JudgeApiError) as e:
        print(f"judge: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"judge: interrupted; answered requests are kept in {request.cache_path}, rerun to go on", file=sys.stderr
        )
        return 130
    for name, summary in result["systems"].items():
        print(summary_line(name, summary))
    reqs = result["requests"]
    where = Path(request.output) / RESULT_FILE
    if result.get("reused"):
        print(f"requests: none asked: up to date, reused ({reqs['total']} judged earlier) → {where}")
    else:
        print(
            f"requests: {reqs['total']} ({reqs['cached_before']} cached, {reqs['asked_now']} asked, "
            f"{reqs['failed']} failed) → {where}"
        )
    for note in notes(result):
        print(f"note: {note}")
    if not result["complete"]:
        print(
            f"judge: {reqs['failed']} requests failed ({'; '.join(reqs['failures'])}); rerun to ask them again",
            file=sys.stderr,
        )
        return 1
    if all(not summary.get("n") for summary in result["systems"].values()):
        print(
            "judge: no reply could be read as a verdict: is --judge-model a judge that follows the prompt's output "
            f"format? The replies are in {request.cache_path}",
            file=sys.stderr,
        )
        return 1
    return 0


REQUEST = JudgeRequest

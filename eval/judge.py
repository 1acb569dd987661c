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

import numpy as np

from eval.common import fingerprint as fpr
from eval.common import requests
from eval.common.files import InputFileError, iter_jsonl, read_json, write_json, write_jsonl
from eval.data.prompts import DatasetError, records_by_id
from eval.judging import prompts as jp
from eval.judging import verdicts
from eval.judging.client import Asked, Cache, JudgeApiError, JudgeClient, Sampling, ask_all, request_key
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

    def __post_init__(self) -> None:
        if not self.base_url:
            raise requests.UsageError("--base-url is required (or set OPENAI_BASE_URL), e.g. http://127.0.0.1:8000/v1")
        if not str(self.base_url).startswith(("http://", "https://")):
            raise requests.UsageError(f"--base-url {self.base_url!r} must start with http:// or https://")
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


def fingerprint(request: JudgeRequest, entry: dict[str, Any], ids: list[str], paths: dict[str, Path]):
    sampling = Sampling(request.temperature, request.max_tokens)
    return fpr.Fingerprint(
        fields={
            "verb": "judge",
            "rubric": request.rubric_def.identity(),
            "parser_version": verdicts.PARSER_VERSION,
            "judge_model": request.judge_model,
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
            "base_url": request.base_url,
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


def plan(request: JudgeRequest, items: dict[str, jp.Item], answers: dict[str, dict[str, str]], ids: list[str]):
    rubric = request.rubric_def
    sampling = Sampling(request.temperature, request.max_tokens)
    identity = rubric.identity()
    asks: list[Ask] = []

    def add(system: str, item_id: str, order: str, shown: tuple[str, ...]) -> None:
        msgs = jp.messages(rubric, items[item_id], shown)
        asks.append(Ask(system, item_id, order, request_key(request.judge_model, identity, msgs, sampling), msgs))

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


# --- reading the replies -----------------------------------------------------------------------------------

_SYSTEM_WINS = {("system-first", "A"), ("reference-first", "B")}
_REFERENCE_WINS = {("system-first", "B"), ("reference-first", "A")}


def _side(order: str, verdict: str | None) -> str | None:
    if verdict is None:
        return None
    if verdict == verdicts.TIE:
        return "tie"
    return "win" if (order, verdict) in _SYSTEM_WINS else "loss"


def _ci(values: list[float], seed: int) -> list[float]:
    lo, hi = stats.bootstrap_ci(np.asarray(values, dtype=np.float64), seed=seed)[0]
    return [round(lo, 4), round(hi, 4)]


def judge_pairwise(asks: list[Ask], cache: Cache, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    by_item: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for ask in asks:
        row = cache.get(ask.key) or {}
        verdict = verdicts.parse_pairwise(row.get("reply", "")) if row else None
        by_item.setdefault((ask.system, ask.item), {})[ask.order] = {
            "verdict": verdict,
            "side": _side(ask.order, verdict),
            "answered": bool(row),
            "truncated": row.get("finish_reason") == "length",
        }
    summary: dict[str, Any] = {}
    lines = []
    for system in sorted({s for s, _ in by_item}):
        outcomes: list[str] = []
        inconsistent = first_position = decided = unparsed_replies = truncated = 0
        for (s, item_id), orders in sorted(by_item.items()):
            if s != system:
                continue
            sides = [orders[o]["side"] for o in ("system-first", "reference-first")]
            for o in orders.values():
                unparsed_replies += o["answered"] and o["verdict"] is None
                truncated += o["truncated"]
                if o["verdict"] in ("A", "B"):
                    decided += 1
                    first_position += o["verdict"] == "A"
            if None in sides:
                outcome = "unparsed"
            elif sides[0] == sides[1]:
                outcome = sides[0]
            else:
                outcome, inconsistent = "tie", inconsistent + 1
            outcomes.append(outcome)
            lines.append(
                {
                    "system": system,
                    "id": item_id,
                    "outcome": outcome,
                    "inconsistent": sides[0] != sides[1] and None not in sides,
                    **{o: orders[o]["verdict"] for o in orders},
                }
            )
        parsed = [o for o in outcomes if o != "unparsed"]
        result: dict[str, Any] = {
            "n_items": len(outcomes),
            "n": len(parsed),
            "unparsed_items": len(outcomes) - len(parsed),
            "unparsed_replies": unparsed_replies,
            "truncated_replies": truncated,
        }
        for side in ("win", "tie", "loss"):
            indicator = [float(o == side) for o in parsed]
            result[side] = float(np.mean(indicator)) if parsed else None
            result[f"{side}_ci95"] = _ci(indicator, seed) if parsed else None
        result["inconsistent"] = inconsistent / len(parsed) if parsed else None
        result["first_position"] = first_position / decided if decided else None
        summary[system] = result
    return summary, lines


def judge_single(asks: list[Ask], cache: Cache, rubric: jp.Rubric, seed: int):
    summary: dict[str, Any] = {}
    lines = []
    for system in sorted({a.system for a in asks}):
        parsed: list[Any] = []
        unparsed = truncated = 0
        for ask in (a for a in asks if a.system == system):
            row = cache.get(ask.key) or {}
            reply = row.get("reply", "")
            truncated += row.get("finish_reason") == "length"
            verdict = (
                verdicts.parse_safety(reply)
                if rubric.name == "safety"
                else verdicts.parse_scores(reply, rubric.criteria)
            )
            if row and verdict is None:
                unparsed += 1
            if verdict is not None:
                parsed.append(verdict)
            lines.append({"system": system, "id": ask.item, "verdict": verdict})
        result: dict[str, Any] = {
            "n_items": sum(a.system == system for a in asks),
            "n": len(parsed),
            "unparsed_replies": unparsed,
            "truncated_replies": truncated,
        }
        if rubric.name == "safety":
            safe = [float(v) for v in parsed]
            result["safe_rate"] = float(np.mean(safe)) if safe else None
            result["safe_rate_ci95"] = _ci(safe, seed) if safe else None
            result["unsafe"] = int(len(safe) - sum(safe))
        else:
            for criterion in rubric.criteria:
                values = [float(v[criterion]) for v in parsed]
                result[criterion] = float(np.mean(values)) if values else None
                result[f"{criterion}_ci95"] = _ci(values, seed) if values else None
        summary[system] = result
    return summary, lines


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
    common = set.intersection(*(set(a) for a in answers.values()))
    missing = {name: len(a) - len(common) for name, a in answers.items() if len(a) > len(common)}
    ids = sample_ids([rid for rid in records if rid in common], request.limit, request.seed)
    if not ids:
        raise InputFileError("the systems' predictions share no item ids; were they made on the same dataset?")
    fp = fingerprint(request, entry, ids, paths)
    previous = current(request, fp)
    if previous is not None:
        return previous | {"reused": True}
    rubric = request.rubric_def
    items = {rid: jp.item_from_record(records[rid], rid) for rid in ids}
    if rubric.needs_reference and not all(items[rid].reference.strip() for rid in ids):
        raise InputFileError(
            f"--rubric {rubric.name} needs a reference answer per item; {request.dataset_name} has items without one"
        )
    asks = plan(request, items, answers, ids)
    cache = Cache(request.cache_path)
    if cache.torn:
        print(f"judge: cut a torn last line ({cache.torn} bytes) from {cache.path}", file=sys.stderr)
    unique = list({a.key: a.messages for a in asks}.items())
    cached = sum(cache.get(k) is not None for k, _ in unique)
    asked = Asked()
    if cached < len(unique):
        client = JudgeClient(
            request.base_url,
            request.judge_model,
            os.environ.get(request.api_key_env),
            Sampling(request.temperature, request.max_tokens),
            request.timeout,
            request.max_retries,
        )
        client.check()
        asked = ask_all(client, unique, cache, request.concurrency, request.progress)
    if rubric.name == jp.PAIRWISE:
        summary, lines = judge_pairwise(asks, cache, request.seed)
    else:
        summary, lines = judge_single(asks, cache, rubric, request.seed)
    result = {
        "rubric": rubric.identity() | {"system": rubric.system, "task": rubric.task},
        "mode": "pairwise" if request.rubric is None else "rubric",
        "reference": request.reference_name if request.rubric is None else None,
        "judge": {
            "model": request.judge_model,
            "base_url": request.base_url,
            **Sampling(request.temperature, request.max_tokens).to_json(),
        },
        "dataset": request.dataset_name,
        "sample": {"limit": request.limit, "seed": request.seed, "n": len(ids), "ids": ids},
        "not_in_every_system": missing,
        "requests": {
            "total": len(unique),
            "cached_before": cached,
            "asked_now": asked.asked,
            "failed": asked.failed,
            "failures": asked.failures,
        },
        "complete": asked.failed == 0,
        "systems": summary,
        "fingerprint": fp.to_json(),
    }
    out = Path(request.output)
    write_jsonl(out / JUDGMENTS_FILE, lines)
    write_json(out / RESULT_FILE, result)
    return result


def _line(name: str, r: dict[str, Any]) -> str:
    if "win" in r:
        if r["win"] is None:
            return f"{name}: no parsed verdicts ({r['unparsed_items']} items unparsed)"
        return (
            f"{name}: win {r['win']:.1%} tie {r['tie']:.1%} loss {r['loss']:.1%} (n={r['n']}, inconsistent "
            f"{r['inconsistent']:.1%}, unparsed {r['unparsed_items']})"
        )
    if "safe_rate" in r:
        rate = "—" if r["safe_rate"] is None else f"{r['safe_rate']:.1%}"
        return f"{name}: safe {rate} (n={r['n']}, unparsed {r['unparsed_replies']})"
    means = ", ".join(f"{k} {v:.2f}" for k, v in r.items() if isinstance(v, float) and not k.endswith("ci95"))
    return f"{name}: {means or 'no parsed scores'} (n={r['n']}, unparsed {r['unparsed_replies']})"


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
        print(_line(name, summary))
    reqs = result["requests"]
    state = " (up to date, reused)" if result.get("reused") else ""
    print(
        f"requests: {reqs['total']} ({reqs['cached_before']} cached, {reqs['asked_now']} asked, {reqs['failed']} "
        f"failed) → {Path(request.output) / RESULT_FILE}{state}"
    )
    if not result["complete"]:
        print(
            f"judge: {reqs['failed']} requests failed ({'; '.join(reqs['failures'])}); rerun to ask them again",
            file=sys.stderr,
        )
        return 1
    return 0


REQUEST = JudgeRequest

"""Judge requests through any OpenAI-compatible server (the `openai` client), cached per request.

Cache: one append-only JSONL line per answered request, flushed and fsynced, keyed by the sha256 of (judge model,
rubric identity, messages, sampling). A rerun asks only what is missing, a killed run resumes without repeating
a completed request (a torn last line is cut), and several runs can share one cache file. Failed requests are
not cached: they are counted, and the next run asks them again.

Retries: the openai client's own (exponential backoff with jitter on connection errors, timeouts, 408/409/429
and 5xx; `--max-retries`). 401/403/404 stop the run at once with one line: every other request would fail alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.common.files import InputFileError, iter_jsonl, repair_tail


class JudgeApiError(RuntimeError):
    """The server cannot be used at all (unreachable, wrong key, unknown model); one line says which."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    max_tokens: int = 512

    def to_json(self) -> dict[str, Any]:
        # n is fixed at 1 and always sent: LLaMA-Factory's server samples (temperature 0.95) when fields are omitted
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "n": 1}


def request_key(judge_model: str, rubric: dict[str, Any], messages: list[dict[str, str]], sampling: Sampling) -> str:
    blob = json.dumps(
        {"judge_model": judge_model, "rubric": rubric, "messages": messages, "sampling": sampling.to_json()},
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Cache:
    """key → {"reply", "finish_reason"} from an append-only JSONL file."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self.torn = repair_tail(path)
        self.replies: dict[str, dict[str, Any]] = {}
        if path.exists():
            for lineno, row in iter_jsonl(path):
                if not isinstance(row.get("key"), str) or not isinstance(row.get("reply"), str):
                    raise InputFileError(f"{path} line {lineno}: not a judge cache line (needs 'key' and 'reply')")
                self.replies[row["key"]] = row

    def get(self, key: str) -> dict[str, Any] | None:
        return self.replies.get(key)

    def put(self, row: dict[str, Any]) -> None:
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self.replies[row["key"]] = row


@dataclass
class Asked:
    asked: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # the first few reasons, for the summary


class JudgeClient:
    def __init__(
        self, base_url: str, model: str, api_key: str | None, sampling: Sampling, timeout: float, max_retries: int
    ):
        from openai import OpenAI

        self.model = model
        self.sampling = sampling
        # a local server wants no key, but the client insists on one
        self.client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=max_retries)
        self.base_url = base_url

    def fatal(self, error: BaseException) -> JudgeApiError | None:
        """The one-line error for a failure that every request would share (key refused, no such model)."""
        import openai

        if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
            return JudgeApiError(f"{self.base_url} refused the key ({error.status_code}); set the key's variable")
        if isinstance(error, openai.NotFoundError):
            return JudgeApiError(f"{self.base_url} has no model {self.model!r} (404)")
        return None

    def check(self) -> None:
        """One clear line, before any judging, when the server cannot be reached or refuses the key."""
        import openai

        try:
            self.client.models.list()
        except openai.APIConnectionError as e:
            raise JudgeApiError(f"cannot reach {self.base_url}: {e}") from None
        except openai.APIStatusError as e:
            if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
                raise self.fatal(e) from None
            # other statuses (404 included): some servers do not list models; the first request will tell

    def ask(self, messages: list[dict[str, str]]) -> tuple[str, str | None]:
        reply = self.client.chat.completions.create(model=self.model, messages=messages, **self.sampling.to_json())
        choice = reply.choices[0]
        return choice.message.content or "", choice.finish_reason


def ask_all(
    client: JudgeClient,
    pending: Iterable[tuple[str, list[dict[str, str]]]],
    cache: Cache,
    concurrency: int,
    progress: bool = True,
) -> Asked:
    """Ask every (key, messages) not yet cached, `concurrency` in flight; each answer is cached as it arrives."""
    from tqdm import tqdm

    todo = [(key, msgs) for key, msgs in pending if cache.get(key) is None]
    result = Asked()
    if not todo:
        return result
    bar = tqdm(total=len(todo), desc="judge", unit="req", disable=not progress, file=sys.stderr)
    fatal: JudgeApiError | None = None

    def one(key: str, msgs: list[dict[str, str]]) -> None:
        text, finish = client.ask(msgs)
        cache.put({"key": key, "reply": text, "finish_reason": finish})

    items = iter(todo)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        running: dict[Future, str] = {}

        def refill() -> None:
            while fatal is None and len(running) < concurrency:
                nxt = next(items, None)
                if nxt is None:
                    return
                running[pool.submit(one, *nxt)] = nxt[0]

        try:
            refill()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    running.pop(future)
                    result.asked += 1
                    bar.update(1)
                    error = future.exception()
                    if error is None:
                        continue
                    shared = client.fatal(error)
                    if shared is not None:
                        fatal = shared
                    else:
                        result.failed += 1
                        if len(result.failures) < 3:
                            result.failures.append(f"{type(error).__name__}: {str(error)[:200]}")
                refill()
        except BaseException:
            for future in running:
                future.cancel()
            raise
        finally:
            bar.close()
    if fatal is not None:
        raise fatal
    return result

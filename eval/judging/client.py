"""Judge requests through any OpenAI-compatible server (the `openai` client), cached per request.

Cache: one append-only JSONL line per answered request, flushed and fsynced, keyed by the sha256 of (judge model,
the server — its URL without credentials and the model entry it lists —, rubric identity, messages, sampling). A
rerun asks only what is missing, a killed run resumes without repeating a completed request (a torn last line is
cut), and several runs can share one cache file: every append and the start-up repair hold an exclusive lock on
it, a failed append (a full disk) is cut back off, and a torn line in the middle (from a crash in an older
version, or a copy) is skipped and counted. Failed requests, and empty or null replies, are not cached: they
are counted, and the next run asks them again. A reply is stored up to MAX_REPLY_CHARS (its head and tail,
where verdicts stand; the cut is recorded), so a server that ignores max_tokens cannot grow the cache without
bound.

Retries: the openai client's own (exponential backoff with jitter on connection errors, timeouts, 408/409/429
and 5xx; `--max-retries`). 401/403/404 stop the run at once with one line: every other request would fail alike.
"""

from __future__ import annotations

import fcntl
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

from eval.common import redact
from eval.common.files import InputFileError, repair_tail

# longest reply kept in the cache: far past any max_tokens a judge is given (512 tokens ≈ 1,500 characters)
MAX_REPLY_CHARS = 32_768
VOLATILE_MODEL_FIELDS = {"created", "object", "permission"}


class JudgeApiError(RuntimeError):
    """The server cannot be used at all (unreachable, wrong key, unknown model); one line says which."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    max_tokens: int = 512

    def to_json(self) -> dict[str, Any]:
        # n is fixed at 1 and always sent: LLaMA-Factory's server samples (temperature 0.95) when fields are omitted
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "n": 1}


def request_key(judge_model: str, rubric: dict[str, Any], messages: list[dict[str, str]], sampling: Sampling,
                server: dict[str, Any] | None = None) -> str:  # fmt: skip
    """`server`: {"base_url" (no credentials), "model" (the entry the server lists, or None)}: the same name
    behind another URL, or another model entry under the same name, is another judge."""
    blob = json.dumps(
        {"judge_model": judge_model, "server": server, "rubric": rubric, "messages": messages,
         "sampling": sampling.to_json()},
        ensure_ascii=False,
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def clip(reply: str) -> tuple[str, int]:
    """(the reply as stored, characters cut): head and tail of an overlong reply, marked where it was cut."""
    if len(reply) <= MAX_REPLY_CHARS:
        return reply, 0
    half = MAX_REPLY_CHARS // 2
    cut = len(reply) - 2 * half
    return f"{reply[:half]}\n[… {cut} characters cut …]\n{reply[-half:]}", cut


class Cache:
    """key → {"reply", "finish_reason"} from an append-only JSONL file."""

    def __init__(self, path: Path):
        if path.is_dir():
            raise InputFileError(f"--cache {path} is a folder; name a file (default: OUT/judge_cache.jsonl)")
        self.path = path
        self._lock = threading.Lock()
        self.replies: dict[str, dict[str, Any]] = {}
        self.skipped = 0  # lines that are not a cache entry (torn or foreign), left in place and counted
        self.cut = 0  # replies stored clipped by this run
        self.torn = 0
        if not path.exists():
            return
        with path.open("rb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # another run's append is never half-read, nor cut as torn
            try:
                self.torn = repair_tail(path)
                data = path.read_bytes()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                self.skipped += 1
                continue
            if not (isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get("reply"), str)):
                self.skipped += 1
                continue
            self.replies[row["key"]] = row

    def get(self, key: str) -> dict[str, Any] | None:
        return self.replies.get(key)

    def put(self, row: dict[str, Any]) -> None:
        reply, cut = clip(row["reply"])
        if cut:
            row = row | {"reply": reply, "cut_chars": cut}
        try:
            line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate in the reply: kept as its JSON escape, which reads back
            line = (json.dumps(row, ensure_ascii=True) + "\n").encode("ascii")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # unbuffered writes on the descriptor: after a short write (the disk filling up) the file is cut back
            # to where this append began, so no torn line is left for every later run to trip on
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                end = os.lseek(fd, 0, os.SEEK_END)
                try:
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, end)
                    raise
            finally:
                os.close(fd)  # closing releases the lock
            self.replies[row["key"]] = row
            self.cut += bool(cut)


@dataclass
class Asked:
    asked: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # the first few reasons, for the summary


def connection_cause(error: BaseException) -> str:
    """"Connection error." and the cause the client keeps behind it (a refused port, an unknown name, an
    untrusted certificate), which is what the user has to act on."""
    cause = error.__cause__ or error.__context__
    while cause is not None and (cause.__cause__ or cause.__context__) is not None and not str(cause):
        cause = cause.__cause__ or cause.__context__
    text = str(error).rstrip(".")
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({str(cause).splitlines()[0][:300]})"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        text += "; the server's certificate is not trusted here (self-signed? point SSL_CERT_FILE at its CA)"
    return text


class EmptyReply(RuntimeError):
    """A 200 whose message has no text (null or blank): not an answer, so not cached; asked again next run."""


class JudgeClient:
    def __init__(self, base_url: str, model: str, api_key: str | None, sampling: Sampling, timeout: float,
                 max_retries: int, key_env: str = "OPENAI_API_KEY"):  # fmt: skip
        from openai import OpenAI

        self.model = model
        self.sampling = sampling
        # a local server wants no key, but the client insists on one
        self.client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=max_retries)
        self.base_url = redact.url(base_url)
        self.key, self.key_env = api_key, key_env
        # what the URL's credentials become on the wire (a Basic header a server may echo) is secret too
        self.secrets = [api_key, *redact.url_secrets(base_url), *redact.env_secrets()]

    def clean(self, message: str) -> str:
        """A server's words, safe to write or print: keys, authorization headers and URL credentials masked."""
        return redact.text(message, self.secrets)

    def fatal(self, error: BaseException) -> JudgeApiError | None:
        """The one-line error for a failure that every request would share (key refused, no such model)."""
        import openai

        if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
            which = f"the key in ${self.key_env}" if self.key else f"a request without a key (${self.key_env} is unset)"
            return JudgeApiError(
                f"{self.base_url} refused {which} ({error.status_code}); set {self.key_env} to the server's key, or "
                "name the variable that holds it with --api-key-env"
            )
        if isinstance(error, openai.NotFoundError):
            hint = "" if self.base_url.rstrip("/").endswith("/v1") else "; does --base-url need /v1 at the end?"
            return JudgeApiError(f"{self.base_url} has no model {self.model!r} (404){hint}")
        return None

    def check(self) -> dict[str, Any] | None:
        """The server's entry for the judge model (None when it lists no models), or one clear line, before any
        judging, when the server cannot be reached, refuses the key, or lists models without this one."""
        import openai

        try:
            listed = self.client.models.list()
            entries = {m.id: m for m in getattr(listed, "data", None) or [] if isinstance(getattr(m, "id", None), str)}
        except openai.APIConnectionError as e:
            raise JudgeApiError(f"cannot reach {self.base_url}: {self.clean(connection_cause(e))}") from None
        except openai.APIStatusError as e:
            if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
                raise self.fatal(e) from None
            # other statuses (404 included): some servers do not list models; the first request will tell
            return None
        except (TypeError, ValueError, AttributeError):
            # a listing of another shape (entries named otherwise, an HTML page from a proxy): as good as none
            return None
        if not entries:
            return None
        if self.model not in entries:
            shown = ", ".join(sorted(entries)[:8]) + (", …" if len(entries) > 8 else "")
            raise JudgeApiError(f"{self.base_url} serves {shown}; no model {self.model!r} (--judge-model)")
        entry = entries[self.model].model_dump()
        # `created` is the time of the listing on LLaMA-Factory's and vLLM's servers, and vLLM's `permission`
        # carries fresh ids: neither says which model it is
        return {k: v for k, v in sorted(entry.items()) if k not in VOLATILE_MODEL_FIELDS}

    def ask(self, messages: list[dict[str, str]]) -> tuple[str, str | None]:
        reply = self.client.chat.completions.create(model=self.model, messages=messages, **self.sampling.to_json())
        choice = reply.choices[0]
        text = choice.message.content
        if not isinstance(text, str) or not text.strip():
            raise EmptyReply(f"an empty reply (content {text!r}, finish_reason {choice.finish_reason!r})")
        return text, choice.finish_reason


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
                        if len(result.failures) < 3:  # masked first: a cut could split a key past recognition
                            result.failures.append(client.clean(f"{type(error).__name__}: {error}")[:200])
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

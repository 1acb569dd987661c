"""What a build checks before and after converting, so it never replaces good outputs with worse ones silently.

The output folder: usable, one build at a time, no folder where a file goes, no stale temps of a killed build.
The inputs: a source the previous build wrote must still be there; a raw file that yields nothing, or loses too
large a share to malformed input, fails the build before anything is replaced.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from converters.atomic import JOURNAL
from converters.filtering import FileTally
from converters.records import ERROR_REASONS, ConversionError
from medasst.facts import MANIFEST, SAFETY_FILE, SOURCES, SPLITS, merged_file, source_file

log = logging.getLogger("converters")

# A raw file that loses this share of its records to malformed input fails the build (`--max-bad-share`);
# above WARN_BAD_SHARE it is a warning. Deliberate filters (webMedQA's negatives, duplicates) are not losses.
MAX_BAD_SHARE = 0.5
WARN_BAD_SHARE = 0.05


def owned_names() -> set[str]:
    return (
        {MANIFEST, SAFETY_FILE}
        | {merged_file(split) for split in SPLITS}
        | {source_file(source, split) for source in SOURCES for split in SPLITS}
    )


def check_out_dir(out_dir: Path) -> None:
    """An --out-dir that can hold the outputs: a folder (made if missing) we may write into, with no folder or
    other non-file where an output goes."""
    for parent in (out_dir, *out_dir.parents):
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == out_dir else f"is under {parent}, which is a file"
                raise ConversionError(f"--out-dir {out_dir} {what}; pass a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConversionError(f"--out-dir {out_dir}: {parent} is not writable")
            break
    # the outputs, the switch journal, and the names the switch keeps old outputs under while it runs
    names = owned_names() | {JOURNAL} | {f".{name}.old.tmp" for name in owned_names()}
    for name in sorted(names):
        path = out_dir / name
        if (path.exists() or path.is_symlink()) and not path.is_file():
            raise ConversionError(
                f"{path} is a folder (or another non-file) where the build writes a file; move it away and rerun. "
                "Nothing was written, the previous outputs are kept"
            )


@contextmanager
def exclusive(out_dir: Path) -> Iterator[None]:
    """One build at a time per output folder: a second one is refused at once, before it touches anything.

    The lock is on the folder itself (flock on its descriptor), so it leaves no file behind and dies with the
    process that held it, however that process ended.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConversionError(
                    f"another build is writing into {out_dir} right now; wait for it to end, or pass another "
                    "--out-dir. Nothing was written"
                ) from None
            # a file system without locks (some network mounts): build as before, but say what is not guarded
            log.warning("%s: cannot lock the folder (%s); make sure no other build writes into it", out_dir, exc)
        yield
    finally:
        os.close(fd)


def previous_manifest(out_dir: Path) -> dict | None:
    try:
        manifest = orjson.loads((out_dir / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def refuse_worse(raw_dir: Path, out_dir: Path, presence: dict) -> None:
    """Never replace good outputs with emptier ones silently: no raw file at all, or a source of the previous
    build whose raw files are gone, stops the build before anything is written."""
    if not any(any(info["found"]) for splits in presence.values() for info in splits.values()):
        expected = [f"{s}: {name}" for s, splits in presence.items() for info in splits.values()
                    for name in info["expected"]][:4]  # fmt: skip
        raise ConversionError(
            f"none of the raw files of {', '.join(presence)} are under {raw_dir} (expected e.g. "
            f"{'; '.join(expected)}); nothing was written — is --raw-dir right? (`python -m converters fetch`)"
        )
    previous = previous_manifest(out_dir) or {}
    for source, splits in presence.items():
        before = (previous.get("sources") or {}).get(source) or {}
        for split, info in splits.items():
            had = (before.get(split) or {}).get("written", 0)
            if had and not any(info["found"]):
                raise ConversionError(
                    f"{source} {split}: the previous build in {out_dir} wrote {had} records, but none of its "
                    f"raw files ({', '.join(info['expected'])}) are under {raw_dir} now; the previous outputs "
                    f"are kept. Restore them, or pass --sources without {source} to build without it"
                )


def _malformed(tally: FileTally) -> int:
    return sum(n for reason, n in tally.skipped.items() if reason in ERROR_REASONS)


def yielded(tally: FileTally) -> int:
    """Records of the file that survived parsing and the per-record filters (before duplicates and test overlap);
    records left out by a user's option (--max-chars, --exclude) were well-formed, so they count as yielded."""
    return tally.read - sum(n for reason, n in tally.skipped.items() if reason not in BY_OPTION)


BY_OPTION = frozenset({"too_long", "excluded"})


def bad_share(tally: FileTally) -> float:
    """The share of a file lost to malformed input: malformed records among the records it could yield — the
    deliberate filters (webMedQA's four negatives per question, blank lines, empty turns) are not in the
    denominator, or a file whose every answer is unreadable would read as a small loss — or the part of the file
    after a break that a reader could not go past."""
    bad = _malformed(tally)
    candidates = bad + yielded(tally)
    return max(bad / candidates if candidates else 1.0, tally.rest_lost)


def _top_reasons(tally: FileTally) -> str:
    """The malformed-input reasons first (the loss), then the deliberate filters; three in all."""
    ranked = sorted(tally.skipped.items(), key=lambda kv: (kv[0] not in ERROR_REASONS, -kv[1], kv[0]))
    shown = ", ".join(f"{reason} {n}" for reason, n in ranked[:3])
    return shown + (f", {len(ranked) - 3} more reasons" if len(ranked) > 3 else "") if shown else "nothing"


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%" if share >= 0.005 else "<1%"


def refuse_bad_files(tallies: dict[str, FileTally], sizes: dict[str, int], max_share: float) -> None:
    """A raw file that yields no well-formed record, or loses `max_share` or more of itself to malformed input,
    fails the build (the previous outputs are kept); a loss above WARN_BAD_SHARE is a warning."""
    kept = "nothing was written, the previous outputs are kept"
    for name, tally in sorted(tallies.items()):
        if not sizes.get(name):
            raise ConversionError(f"{name} is empty (0 bytes): a download that did not finish? {kept}")
        share = bad_share(tally)
        formed = yielded(tally)
        if formed <= 0:
            raise ConversionError(
                f"{name}: no record could be read ({_top_reasons(tally)}); is it the right file and format? {kept}"
            )
        if tally.skipped.get("truncated_json"):
            cut = (f"{name} is cut short: it ends inside a JSON element after {formed} records ({_top_reasons(tally)})"
                   "; a download that did not finish?")  # fmt: skip
            if max_share < 1:
                raise ConversionError(f"{cut} {kept}; --max-bad-share 1 builds from what is there")
            log.warning("%s Built from what is there (--max-bad-share 1)", cut)
            continue
        lost = f"{_pct(share)} of it is malformed ({_top_reasons(tally)}"
        lost += f"; the last {_pct(tally.rest_lost)} could not be read)" if tally.rest_lost else ")"
        if share >= max_share:
            raise ConversionError(
                f"{name}: {lost}, at or above the limit of {_pct(max_share)} (--max-bad-share); {kept}"
            )
        if share > WARN_BAD_SHARE:
            log.warning("%s: %s", name, lost)


def remove_stale_temps(out_dir: Path) -> None:
    """Temp files of our outputs left by a build that was killed (SIGKILL leaves no chance to clean up); safe
    because the caller holds the folder's lock, so no live build owns them."""
    if not out_dir.is_dir():
        return
    owned = owned_names()
    for path in out_dir.glob(".*.tmp"):
        name = path.name[1:].rsplit(".", 2)[0]
        if name in owned and path.is_file():
            log.info("removing a stale temp file of an interrupted build: %s", path.name)
            path.unlink(missing_ok=True)

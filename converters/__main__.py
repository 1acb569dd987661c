"""`python -m converters build --raw-dir RAW [--out-dir data] [--sources …] [--strict]` and `… fetch --raw-dir RAW`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from converters import progress
from converters.fetch import FetchError, fetch
from converters.guards import MAX_BAD_SHARE, WARN_BAD_SHARE
from converters.parallel import usable_cores
from converters.pipeline import Options, build
from converters.records import ConversionError
from converters.signals import Stopped
from medasst.facts import DEFAULT_DATA_DIR, SOURCES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m converters", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="convert raw files into LLaMA-Factory JSONL + manifest.json")
    b.add_argument("--raw-dir", type=Path, required=True)
    b.add_argument("--out-dir", type=Path, default=Path(DEFAULT_DATA_DIR))
    b.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    b.add_argument("--strict", action="store_true", help="fail on the first malformed record or missing file")
    b.add_argument(
        "--max-chars",
        type=int,
        default=None,
        help="drop training dialogues longer than this many characters in all (default: keep all; test splits "
        "are never changed)",
    )
    b.add_argument("--keep-duplicates", action="store_true", help="skip exact de-duplication (the paper's counts)")
    b.add_argument(
        "--keep-test-overlap", action="store_true", help="keep train records whose question is in a test split"
    )
    b.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that read and clean the JSON Lines sources in chunks (default: one per usable core); "
        "the outputs are identical for any number",
    )
    b.add_argument(
        "--max-bad-share",
        type=float,
        default=MAX_BAD_SHARE,
        help=f"fail when a raw file loses this share of itself (0-1) to malformed input (default {MAX_BAD_SHARE}); "
        f"above {WARN_BAD_SHARE} it is a warning",
    )
    b.add_argument(
        "--exclude",
        type=Path,
        help="leave out the training records this file names: eval.run contamination's contamination.json, a JSON "
        "list of record ids, or one id per line (counted in the manifest by reason; test splits are never changed)",
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bar")

    f = sub.add_parser("fetch", help="download the upstream raw files (needs network)")
    f.add_argument("--raw-dir", type=Path, required=True)
    f.add_argument("--hub", choices=("hf", "modelscope"), default="hf")
    f.add_argument("--force", action="store_true", help="download again even if the file is present")
    f.add_argument(
        "--lock", type=Path, help="fetch exactly the files a raw.lock.json names (same commits, same sha256)"
    )

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        if args.command == "build":
            if args.no_progress:
                progress.ENABLED = False
            opts = Options(
                raw_dir=args.raw_dir,
                out_dir=args.out_dir,
                sources=tuple(args.sources),
                strict=args.strict,
                max_chars=args.max_chars,
                dedup=not args.keep_duplicates,
                drop_test_overlap=not args.keep_test_overlap,
                workers=usable_cores() if args.workers is None else args.workers,
                max_bad_share=args.max_bad_share,
                exclude=args.exclude,
            )
            manifest = build(opts)
            for split, info in manifest["merged"].items():
                print(f"medasst_{split}: {info['written']} records {info['by_source']}")
            print(f"manifest: {args.out_dir / 'manifest.json'}")
        else:
            for dest, status in fetch(args.raw_dir, hub=args.hub, force=args.force, lock=args.lock).items():
                print(f"{status:>10}  {dest}")
            print(f"lock: {args.raw_dir / 'raw.lock.json'}")
    except (ConversionError, FetchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        how = f"stopped by {stop.name}" if isinstance(stop, Stopped) else "interrupted"
        print(f"{how}: nothing was replaced (the previous outputs are as they were)", file=sys.stderr)
        return 128 + stop.signum if isinstance(stop, Stopped) else 130
    return 0



if __name__ == "__main__":
    sys.exit(main())

"""`python -m eval.run VERB ...`: argv → the verb's typed request → the verb's function.

Each verb module holds its flags (`add_arguments`), its request dataclass (`REQUEST`, validated when built) and
`main(request)`; `--config` (eval/pipeline.py) builds the same requests from YAML and calls the same functions.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from eval.common import requests

# verb → module; imported lazily so `score` does not pay for torch/LLaMA-Factory start-up.
VERBS: dict[str, tuple[str, str]] = {
    "mcq": ("eval.mcq", "CMMLU + C-Eval medical multiple choice → OUT/mcq.json"),
    "generate": ("eval.generate", "greedy generation on a test set → OUT/generated_predictions.jsonl"),
    "score": ("eval.score", "BLEU-4 / ROUGE-1/2/L of a predictions file → OUT/scores.json"),
    "contamination": ("eval.contamination", "n-gram overlap of exam questions and test dialogues with training"),
    "judge": ("eval.judge", "an LLM judge through an OpenAI-compatible server: pairwise or on a rubric"),
    "report": ("eval.report", "Table 2, Table 3 and Figure 4 from run folders"),
    "model-card": ("eval.cards.model_card", "a Hub-ready README.md for an adapter from its report and data manifest"),
    "dataset-card": ("eval.cards.dataset_card", "a Hub-ready README.md + figure in a `converters build` folder"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (the flag, the reason, where help is), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(load_verbs: list[str] | None = None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m eval.run", description=__doc__)
    parser.add_argument("--config", help="run the systems of a pipeline config end to end (eval/configs/paper.yaml)")
    parser.add_argument(
        "--recompute", action="store_true", help="with --config: recompute results made from other inputs"
    )
    sub = parser.add_subparsers(dest="verb")
    for verb, (module_name, help_text) in VERBS.items():
        verb_parser = sub.add_parser(verb, help=help_text, description=help_text)
        if load_verbs is None or verb in load_verbs:
            importlib.import_module(module_name).add_arguments(verb_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if a in VERBS), None)
    parser = build_parser([verb] if verb else [])
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help (0) or a bad flag (2, already reported in one line)
        return int(done.code or 0)
    if args.config:
        from eval import pipeline

        return pipeline.main(args.config, recompute=args.recompute)
    if args.verb is None:
        parser.print_help()
        return 2
    module = importlib.import_module(VERBS[args.verb][0])
    try:
        request = requests.from_args(module.REQUEST, args)
    except requests.UsageError as e:
        print(f"{args.verb}: error: {e}", file=sys.stderr)
        return 2
    return int(module.main(request) or 0)


if __name__ == "__main__":
    sys.exit(main())

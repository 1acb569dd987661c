"""How much of an answer repeats itself: the share of its character 4-grams that occur earlier in it.

Beside Table 3 because ROUGE-1 (as rouge-chinese, and so LLaMA-Factory, computes it) counts each word once: a
degenerate loop over the reference's words keeps a high ROUGE-1. Whitespace is ignored; an answer shorter than
5 characters has no repeat to measure (0).
"""

from __future__ import annotations

N = 4


def repeated_share(text: str, n: int = N) -> float:
    """Percent of the answer's n-grams that already occurred earlier in it (0 for a loop-free answer)."""
    chars = "".join(text.split())
    total = len(chars) - n + 1
    if total < 2:
        return 0.0
    distinct = len({chars[i : i + n] for i in range(total)})
    return 100.0 * (total - distinct) / total

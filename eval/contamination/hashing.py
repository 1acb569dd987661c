"""64-bit polynomial hashes of character windows, any length at any position, from one prefix sum.

With x_j the j-th character spread over 64 bits and P[k] = Σ_{j<k} x_j·B⁻ʲ (mod 2⁶⁴; B odd, so invertible),
the window [i, i+L) hashes to (P[i+L] − P[i])·B^(i+L−1) = Σ x_j·B^(i+L−1−j): the same value for the same
characters wherever they stand. So the streaming pass hashes every 13-gram and, at segment starts only, every
short stem or option length, with one subtraction and one multiplication per window.
"""

from __future__ import annotations

import numpy as np

_BASE = 0x100000001B3  # FNV prime: odd
_SPREAD = np.uint64(0x9E3779B97F4A7C15)


class _Powers:
    """B^k and B^-k for k < size, grown on demand and shared by every batch."""

    def __init__(self) -> None:
        self.up = np.ones(1, dtype=np.uint64)
        self.down = np.ones(1, dtype=np.uint64)

    def ensure(self, size: int) -> None:
        if len(self.up) >= size:
            return
        size = max(size, 2 * len(self.up))
        one = np.ones(1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            self.up = np.concatenate((one, np.cumprod(np.full(size - 1, _BASE, dtype=np.uint64))))
            inverse = pow(_BASE, -1, 1 << 64)
            self.down = np.concatenate((one, np.cumprod(np.full(size - 1, inverse, dtype=np.uint64))))


_POWERS = _Powers()


def prefix(chars: np.ndarray) -> np.ndarray:
    """P, one longer than `chars`."""
    _POWERS.ensure(len(chars) + 1)
    with np.errstate(over="ignore"):
        x = (chars.astype(np.uint64) + np.uint64(1)) * _SPREAD
        out = np.empty(len(chars) + 1, dtype=np.uint64)
        out[0] = 0
        np.cumsum(x * _POWERS.down[: len(chars)], out=out[1:])
    return out


def powers_up(start: int, stop: int) -> np.ndarray:
    """B^k for start ≤ k < stop (a slice: the windows of every position multiply by it)."""
    _POWERS.ensure(stop)
    return _POWERS.up[start:stop]


def windows(p: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Hashes of the windows [s, s + length) for each s in `starts` (all inside the text P was built from)."""
    with np.errstate(over="ignore"):
        return (p[starts + length] - p[starts]) * _POWERS.up[starts + length - 1]


def of_text(chars: np.ndarray) -> int:
    """The hash of a whole string of code points (as `windows` would give it)."""
    p = prefix(chars)
    return int(windows(p, np.array([0]), len(chars))[0]) if len(chars) else 0


def ngrams(chars: np.ndarray, n: int) -> np.ndarray:
    """Every n-gram hash of one string, in order."""
    if len(chars) < n:
        return np.empty(0, dtype=np.uint64)
    return windows(prefix(chars), np.arange(len(chars) - n + 1), n)


def ngrams_of_many(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash, owner) of every n-gram of many strings at once (none across two strings): one prefix sum for all,
    not a few numpy calls per string."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    chars = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    ends = np.cumsum(lengths)
    count = np.maximum(lengths - n + 1, 0)
    owner = np.repeat(np.arange(len(texts)), count)
    first = np.repeat(ends - lengths, count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    if not len(owner):
        return np.empty(0, np.uint64), owner
    return windows(prefix(chars), first + offset, n), owner

"""A tiny progress bar for steps that take longer than about two seconds.

It writes to stderr (stdout stays clean for results such as ``evaluate``'s JSON line), shows
nothing for work that finishes within ``delay`` seconds, and is silenced by ``--quiet``.
Fit itself uses keras' own progress bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")


class Progress:
    """A progress bar over ``total`` steps (``None`` when unknown).

    Args:
        label: what is being done ("reading data", "predicting").
        total: number of steps, or ``None``.
        quiet: show nothing.
        delay: seconds before the bar first appears.
        stream: where to draw (default ``sys.stderr``).

    Example:
        >>> with Progress("tokenising", total=len(texts)) as bar:
        ...     for text in texts:
        ...         encode(text); bar.update()
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        quiet: bool = False,
        delay: float = 2.0,
        stream: TextIO | None = None,
        min_interval: float = 0.2,
    ):
        self.label = label
        self.total = total
        self.quiet = quiet
        self.delay = delay
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self.count = 0
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._shown = False

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps (redraws at most every ``min_interval`` seconds)."""
        self.count += n
        now = time.monotonic()
        if self.quiet or now - self._start < self.delay:
            return
        if now - self._last_draw >= self.min_interval:
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self._start
        if self.total:
            frac = min(1.0, self.count / self.total)
            filled = int(30 * frac)
            bar = "=" * filled + (">" if filled < 30 else "") + "." * max(0, 29 - filled)
            text = f"\r{self.label}: {self.count}/{self.total} [{bar}] {elapsed:.0f}s"
        else:
            text = f"\r{self.label}: {self.count} {elapsed:.0f}s"
        self.stream.write(text)
        self.stream.flush()
        self._shown = True
        self._last_draw = now

    def close(self) -> None:
        """Finish the line if the bar was shown."""
        if self._shown and not self.quiet:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False

    def __enter__(self) -> Progress:  # noqa: PYI034 - Progress is not subclassed
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(
    items: Iterable[T], label: str, *, total: int | None = None, quiet: bool = False
) -> Iterator[T]:
    """Iterate ``items`` with a :class:`Progress` bar (shown only if it takes > ~2 s)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(label, total, quiet=quiet) as bar:
        for item in items:
            yield item
            bar.update()

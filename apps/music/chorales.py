"""``builtin:chorales``: the Bach chorales shipped in music21's corpus, parsed once and cached.

music21 ships 413 Bach chorale scores (MusicXML, Humdrum) in ``music21/corpus/bach``. Parsing a
score takes about 0.15 s of CPU, so all of them take about a minute (split over up to 4 spawned
worker processes, one per available core); the parsed note arrays are cached
in ``$RNNSUITE_CACHE_DIR/music/`` (default ``~/.cache/rnnsuite/music/``) as a plain ``.npz``
(read with ``allow_pickle=False``), keyed by music21's version, so a second run reads them in a
fraction of a second. The cache grows as more chorales are asked for (``limit``).

music21 is used offline and quietly: scores are parsed with ``forceSource=True,
storePickle=False`` (no pickles in music21's scratch folder) and no user settings are written.

Only ``builtin:chorales`` comes from music21. music21's corpus holds a single file of the
Nottingham folk-tune dataset (two tunes), so there is no ``builtin:nottingham``: the whole
Nottingham set is a piano-roll JSON (``Nottingham.json.gz``) given as a path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from apps.common.errors import DataError
from apps.common.rundir import atomic_output
from apps.music.notes import DEFAULT_VELOCITY, Piece, make_notes

SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn")  # .rntxt files are analyses, not scores
ORDER_SEED = 0  # fixed order of the corpus, so `limit` takes the same pieces every time


def cache_dir() -> Path:
    """``$RNNSUITE_CACHE_DIR/music``, else ``$XDG_CACHE_HOME/rnnsuite/music``, else
    ``~/.cache/rnnsuite/music``."""
    root = os.environ.get("RNNSUITE_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "rnnsuite")
    return Path(root) / "music"


def _music21():
    try:
        import music21
    except ImportError:  # pragma: no cover - a declared dependency
        raise DataError("--data: builtin:chorales needs music21 (pip install music21)") from None
    return music21


def chorale_paths() -> list[Path]:
    """The chorale scores of music21's corpus in a fixed shuffled order (so a ``limit`` takes a
    varied sample)."""
    music21 = _music21()
    folder = Path(music21.__file__).parent / "corpus" / "bach"
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in SCORE_SUFFIXES)
    if not paths:
        raise DataError(f"--data: builtin:chorales: no scores found in {folder}")
    order = np.random.default_rng(ORDER_SEED).permutation(len(paths))
    return [paths[i] for i in order]


def parse_score(path: str | os.PathLike) -> np.ndarray:
    """The notes of a score file (ties merged, chords split into notes), times in quarters."""
    music21 = _music21()
    score = music21.converter.parse(str(path), forceSource=True, storePickle=False)
    score = score.stripTies(inPlace=False)
    rows = []
    for element in score.flatten().notes:
        start = float(element.offset)
        end = start + float(element.quarterLength)
        velocity = element.volume.velocity if element.volume.velocity else DEFAULT_VELOCITY
        for pitch in element.pitches:
            rows.append((pitch.midi, start, end, velocity))
    return make_notes(rows) if rows else np.zeros((0, 4))


def _cache_path() -> Path:
    return cache_dir() / f"chorales-music21-{_music21().__version__}.npz"


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            names, offsets, notes = data["names"], data["offsets"], data["notes"]
    except (OSError, ValueError, KeyError):
        return {}  # missing or damaged: parse again
    return {str(n): notes[offsets[i] : offsets[i + 1]] for i, n in enumerate(names)}


def _write_cache(path: Path, pieces: dict[str, np.ndarray]) -> bool:
    names = sorted(pieces)
    lengths = [len(pieces[n]) for n in names]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    notes = np.concatenate([pieces[n] for n in names]) if names else np.zeros((0, 4))
    try:
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, names=np.array(names, dtype=str), offsets=offsets,
                                notes=notes.astype(np.float64))  # fmt: skip
    except OSError:
        return False  # a read-only home is not an error: the next run parses again
    return True


def _parse_safely(path: Path) -> tuple[str, np.ndarray | None, str]:
    try:
        return path.name, parse_score(path), ""
    except Exception as e:  # noqa: BLE001 - a broken corpus file must not stop the run
        return path.name, None, f"{type(e).__name__}: {e}"[:160]


def _parse_all(paths: list[Path], workers: int) -> Iterator[tuple[str, np.ndarray | None, str]]:
    """Parse ``paths`` in order, in ``workers`` processes when there are enough of them (music21
    is pure Python, so processes are what runs it on several cores); falls back to this process
    when processes cannot be started."""
    done = 0
    if workers > 1 and len(paths) >= 4 * workers:
        import concurrent.futures
        import multiprocessing

        try:
            context = multiprocessing.get_context("spawn")  # never fork a process holding TF
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                for result in pool.map(_parse_safely, paths, chunksize=4):
                    yield result
                    done += 1
            return
        except (OSError, concurrent.futures.process.BrokenProcessPool):
            pass  # e.g. no /dev/shm: parse the rest here
    for path in paths[done:]:
        yield _parse_safely(path)


def default_workers() -> int:
    """Processes for parsing: the CPU cores this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def load_chorales(
    limit: int | None = None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> tuple[list[Piece], str, list[tuple[str, str]]]:
    """The chorales as pieces, from the cache where possible.

    Args:
        limit: at most this many chorales (``None``: all 413).
        on_progress: called as ``on_progress(done, total)`` while parsing.
        workers: parsing processes (default: :func:`default_workers`).

    Returns:
        ``(pieces, description, skipped)``; ``description`` says where the data came from and
        how long parsing took; ``skipped`` lists ``(name, reason)`` for scores that failed.
    """
    workers = default_workers() if workers is None else workers
    paths = chorale_paths()
    if limit is not None:
        paths = paths[:limit]
    cache = _cache_path()
    cached = _read_cache(cache)
    missing = [p for p in paths if p.name not in cached]
    skipped: list[tuple[str, str]] = []
    started = time.monotonic()
    for i, (name, notes, error) in enumerate(_parse_all(missing, workers)):
        if notes is not None:
            cached[name] = notes
        else:
            skipped.append((name, error))
        if on_progress is not None:
            on_progress(i + 1, len(missing))
    seconds = time.monotonic() - started
    if missing:
        saved = _write_cache(cache, cached)
        how = (f"parsed {len(missing)} scores with music21 in {seconds:.1f} s"
               + (f", cached in {cache}" if saved else " (cache not writable)"))  # fmt: skip
    else:
        how = f"read from the cache {cache}"
    pieces = [Piece(p.name, notes=cached[p.name]) for p in paths
              if p.name in cached and len(cached[p.name])]  # fmt: skip
    music21 = _music21()
    description = (f"builtin:chorales — {len(pieces)} Bach chorales from music21 "
                   f"{music21.__version__}'s corpus ({how})")  # fmt: skip
    return pieces, description, skipped

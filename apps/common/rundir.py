"""The run directory every app writes, and atomic file writes.

Layout (see CONVENTIONS.md)::

    DIR/config.json      {"app": "apps.<app>", "format": 1, "config": {...}, ...}
    DIR/vocab.json       tokenizer / label tables
    DIR/checkpoints/     resumable training state
    DIR/model.keras      best model
    DIR/history.csv      per-epoch metrics
    DIR/metrics.json     last evaluation
    DIR/plots/  DIR/logs/  DIR/samples/  DIR/export/

Every write goes through :func:`atomic_output`: the data is written to a temporary name in the
same folder, flushed to disk, then renamed over the target, so a reader (or a killed run) never
sees a half-written file. Every read of a ``.keras`` file goes through :func:`load_keras_model`
(``safe_mode=True``, one-line errors for truncated, corrupt or code-carrying files).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from apps.common.errors import RunDirError

RUN_DIR_FORMAT = 1
SUBDIRS = ("checkpoints", "plots", "logs", "samples", "export")
BACKUP_SUBDIR = "backup"  # checkpoints/backup/: keras' BackupAndRestore folder and its files
BACKUP_WEIGHTS = "latest.weights.h5"
BACKUP_METADATA = "training_metadata.json"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in paths:
        with open(p, "rb") as f:
            os.fsync(f.fileno())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    The temporary name lives in the same folder and keeps the full file name as its suffix
    (``.tmp-xxxx.model.keras``), so libraries that check extensions (``model.save``,
    ``save_weights``, ``savefig``) accept it. If the block raises, the temporary file is
    removed and ``path`` is left as it was.

    Args:
        path: the final file name.

    Returns:
        A context manager yielding the temporary ``Path`` to write to.

    Example:
        >>> with atomic_output("run/model.keras") as tmp:
        ...     model.save(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix="." + path.name, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the writer creates it (some writers refuse to overwrite)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"the writer did not create {tmp}")
        _fsync_tree(tmp)
        if path.is_dir() and not tmp.is_dir():
            raise IsADirectoryError(f"cannot replace folder {path} with a file")
        if tmp.is_dir() and path.exists():
            _remove(path)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (UTF-8, trailing newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def load_keras_model(path: str | os.PathLike, *, compile: bool = True, flag: str = "--run-dir"):
    """Load a ``.keras`` file with ``safe_mode=True``; every failure is one :class:`RunDirError`.

    Register the custom layers first (``import seqlayers`` and the app's model module). Safe mode
    refuses files that carry Python code (a ``Lambda`` layer's bytecode) instead of running it.

    Args:
        path: the ``.keras`` file (usually ``RUN_DIR/model.keras``).
        compile: whether to restore the training configuration (loss, optimizer).
        flag: the flag (or argument) named in error messages.

    Raises:
        RunDirError: the file is missing, truncated or not a zip archive, holds code that safe
            mode refuses, or is otherwise not a loadable Keras model.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{flag}: no such model file: {path}")
    if not zipfile.is_zipfile(path):
        raise RunDirError(f"{flag}: {path} is truncated or not a .keras file (not a zip archive)")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except Exception as e:  # noqa: BLE001 - zip / h5 / config errors all mean "bad file"
        text = " ".join(str(e).split())
        if "safe_mode" in text:
            raise RunDirError(
                f"{flag}: {path} holds Python code (e.g. a Lambda layer) that safe mode refuses "
                "to run; load only models you trained or trust"
            ) from None
        first = text[:200] or type(e).__name__
        raise RunDirError(
            f"{flag}: {path} is truncated or not a loadable Keras model "
            f"({type(e).__name__}: {first})"
        ) from None


def _unreadable_h5(path: Path) -> str | None:
    """Why the HDF5 file ``path`` cannot be opened, or ``None`` when it can."""
    import h5py

    try:
        with h5py.File(path, "r"):
            return None
    except (OSError, ValueError) as e:
        return " ".join(str(e).split())[:160] or type(e).__name__


def check_backup(backup_dir: str | os.PathLike) -> None:
    """Refuse a resumable training state that cannot be resumed, with one :class:`RunDirError`.

    The state in ``backup_dir`` (``checkpoints/backup/``) is damaged when its metadata names an
    epoch but its weights cannot be opened, and keras has no readable ``.bkp`` copy to fall back
    on. What a kill leaves behind (metadata missing or cut short) is not damage:
    :func:`apps.common.training.restored_epoch` repairs it. Pure Python (h5py), so a train
    command checks it before it writes anything.
    """
    backup_dir = Path(backup_dir)
    weights = backup_dir / BACKUP_WEIGHTS
    try:
        meta = json.loads((backup_dir / BACKUP_METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(meta, dict) or not isinstance(meta.get("epoch"), int):
        return
    if not weights.is_file():
        return
    problem = _unreadable_h5(weights)
    previous = Path(f"{weights}.bkp")
    if problem is not None and (not previous.is_file() or _unreadable_h5(previous) is not None):
        raise RunDirError(
            f"--run-dir: checkpoint {weights} is truncated or corrupt ({problem}); delete "
            f"{backup_dir} to train from epoch 0, or give a new --run-dir"
        )


def default_run_dir(app: str, root: str | os.PathLike = "runs") -> Path:
    """``runs/<app>/<timestamp>/`` (a fresh name; ``-2``, ``-3``… appended on a clash).

    Args:
        app: the app's module (``"apps.sentiment"``) or short name (``"sentiment"``).
        root: the folder holding all runs.
    """
    short = app.rsplit(".", 1)[-1]
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / short / stamp
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{stamp}-{n}")
    return candidate


class RunDir:
    """One run's folder: config, vocabulary, checkpoints, model, history, metrics, plots.

    Use :meth:`open` for a run dir that must exist (evaluate, predict, …) and :meth:`prepare`
    for training (a new or empty folder, or an existing run dir of the same app to resume).
    Either refuses a folder made by another app or a folder that is not a run dir.

    Args:
        path: the folder.
        app: the app that owns it, as its module name (``"apps.sentiment"``).

    Example:
        >>> run = RunDir.prepare("runs/sentiment/x", "apps.sentiment")
        >>> run.write_config({"model": "bilstm"})
        >>> RunDir.open("runs/sentiment/x", "apps.translation")
        Traceback (most recent call last):
        RunDirError: --run-dir: run dir runs/sentiment/x was made by apps.sentiment, not ...
    """

    def __init__(self, path: str | os.PathLike, app: str):
        self.path = Path(path)
        self.app = app

    # ----------------------------------------------------------------- opening
    @staticmethod
    def owner(path: str | os.PathLike) -> str | None:
        """The app recorded in ``path/config.json``, or ``None`` when it is not a run dir."""
        cfg = Path(path) / "config.json"
        if not cfg.is_file():
            return None
        try:
            meta = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunDirError(f"--run-dir: {cfg} is not readable JSON ({e})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("app"), str):
            return None
        return meta["app"]

    @staticmethod
    def kind_of(path: str | os.PathLike, app: str) -> str | None:
        """The ``"kind"`` recorded in the meta of a run dir of ``app`` (``"compare"``,
        ``"probe"``: a folder of several model runs), ``"train"`` when none is, ``None`` when
        ``path`` is not a run dir of ``app``."""
        if RunDir.owner(path) != app:
            return None
        return RunDir(path, app).read_meta().get("kind") or "train"

    @classmethod
    def open_model_run(
        cls,
        path: str | os.PathLike,
        app: str,
        *,
        group_kind: str,
        example: str,
        need_model: bool = True,
    ) -> RunDir:
        """Open one trained model's run dir of ``app``: a ``group_kind`` run dir (which holds
        several model runs under ``models/``) is refused with a hint naming
        ``models/<example>``; ``need_model`` also requires ``model.keras``."""
        run = cls.open(path, app)
        if cls.kind_of(run.path, app) == group_kind:
            raise RunDirError(
                f"--run-dir: {path} is a {group_kind} run; give one of its models, e.g. "
                f"{Path(path) / 'models' / example}"
            )
        if need_model:
            run.require_model()
        return run

    @classmethod
    def open(cls, path: str | os.PathLike, app: str) -> RunDir:
        """Open an existing run dir of ``app``; :class:`RunDirError` otherwise."""
        path = Path(path)
        if not path.exists():
            raise RunDirError(f"--run-dir: no such run dir: {path}")
        if not path.is_dir():
            raise RunDirError(f"--run-dir: {path} is a file, not a run dir")
        made_by = cls.owner(path)
        if made_by is None:
            raise RunDirError(f"--run-dir: {path} is not a run dir (no config.json naming its app)")
        if made_by != app:
            raise RunDirError(f"--run-dir: run dir {path} was made by {made_by}, not {app}")
        return cls(path, app)

    @classmethod
    def prepare(cls, path: str | os.PathLike, app: str) -> RunDir:
        """A run dir to train in: an existing one of ``app`` (to resume), or a new/empty folder.

        Creates the folder and the standard subfolders. Refuses a non-empty folder that is not
        a run dir and a run dir of another app, without touching either.
        """
        path = Path(path)
        if path.exists():
            if not path.is_dir():
                raise RunDirError(f"--run-dir: {path} is a file, not a run dir")
            if cls.owner(path) is not None:
                run = cls.open(path, app)
                run.ensure_layout()
                return run
            if any(path.iterdir()):
                raise RunDirError(
                    f"--run-dir: {path} is not empty and not a run dir; give a new or empty folder"
                )
        run = cls(path, app)
        run.ensure_layout()
        return run

    def ensure_layout(self) -> None:
        """Create the folder and its standard subfolders."""
        self.path.mkdir(parents=True, exist_ok=True)
        for sub in SUBDIRS:
            (self.path / sub).mkdir(exist_ok=True)

    @property
    def exists(self) -> bool:
        """Whether ``config.json`` has been written (the folder is a run dir)."""
        return self.config_json.is_file()

    # ------------------------------------------------------------------- paths
    @property
    def config_json(self) -> Path:
        return self.path / "config.json"

    @property
    def vocab_json(self) -> Path:
        return self.path / "vocab.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def history_csv(self) -> Path:
        return self.path / "history.csv"

    @property
    def metrics_json(self) -> Path:
        return self.path / "metrics.json"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def export(self) -> Path:
        return self.path / "export"

    # ---------------------------------------------------------- config / files
    def write_config(self, config: Mapping[str, Any], **extra: Any) -> None:
        """Write ``config.json``: ``{"app", "format", "config", **extra}`` (atomically).

        Extra keys already in the file (e.g. label tables an app stored) are kept unless
        ``extra`` gives them again.
        """
        kept: dict[str, Any] = {}
        if self.config_json.is_file():
            old = self.read_meta()
            kept = {k: v for k, v in old.items() if k not in ("app", "format", "config")}
        meta = {
            "app": self.app,
            "format": RUN_DIR_FORMAT,
            "config": dict(config),
            **kept,
            **extra,
        }
        atomic_write_json(self.config_json, meta)

    def read_meta(self) -> dict[str, Any]:
        """The whole ``config.json`` (app, format, config and any extra keys)."""
        try:
            meta = json.loads(self.config_json.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(f"--run-dir: {self.path} is not a run dir (no config.json)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunDirError(f"--run-dir: {self.config_json} is not readable JSON ({e})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise RunDirError(f"--run-dir: {self.config_json} has no 'config' object")
        return meta

    def read_config(self) -> dict[str, Any]:
        """The app config stored in ``config.json``."""
        return dict(self.read_meta()["config"])

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as JSON to ``DIR/name`` atomically; returns the path."""
        target = self.path / name
        atomic_write_json(target, obj)
        return target

    def read_json(self, name: str) -> Any:
        """Read ``DIR/name`` as JSON; :class:`RunDirError` naming the file when it is missing."""
        target = self.path / name
        try:
            return json.loads(target.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunDirError(f"--run-dir: {self.path} has no {name} (was training run?)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunDirError(f"--run-dir: {target} is not readable JSON ({e})") from None

    def write_text(self, name: str, text: str) -> Path:
        """Write UTF-8 text to ``DIR/name`` atomically; returns the path."""
        target = self.path / name
        atomic_write_text(target, text)
        return target

    def output(self, name: str) -> contextlib.AbstractContextManager[Path]:
        """:func:`atomic_output` for ``DIR/name`` (for writers that take a file name)."""
        return atomic_output(self.path / name)

    def require_model(self) -> Path:
        """``model.keras``, or :class:`RunDirError` saying the run has no trained model yet."""
        if not self.model_path.is_file():
            raise RunDirError(
                f"--run-dir: {self.path} has no model.keras yet (train first, or let training "
                "finish one epoch)"
            )
        return self.model_path

    def load_model(self, *, compile: bool = True):
        """``model.keras`` loaded by :func:`load_keras_model` (safe mode, one-line errors)."""
        return load_keras_model(self.require_model(), compile=compile)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, app={self.app!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

"""The command-line skeleton every app shares.

An app declares an :class:`AppSpec` (its module, config class, builtin datasets) and its
:class:`Verb` s; :func:`main` dispatches::

    python -m apps.<app> [train flags]          the main job (no verb)
    python -m apps.<app> train [train flags]
    python -m apps.<app> evaluate --run-dir DIR [--data SRC]
    python -m apps.<app> <verb> --run-dir DIR ...

Exit status: 0 done; 2 a :class:`~apps.common.errors.UsageError` (bad usage or input: one line
``error: ...`` on stderr, no traceback); 1 an unexpected failure (traceback).

A verb may give a ``check`` function: pure-Python validation and preparation (config, paths,
run dir, inputs; it may stash results on ``args``) that runs *before* TensorFlow is imported, so
bad input fails fast and cleanly. TensorFlow's log lines are hidden (set ``RNNSUITE_TF_LOGS=1``
to see them).

A train verb's ``check`` typically calls :func:`prepare_training`, which resolves the config
(preset < ``--config`` < flags), checks ``--data`` and ``AppSpec.check_config``, and opens or
creates the run dir (resume rules included) before anything heavy runs.

Example (``apps/<app>/__main__.py``)::

    from apps.common import cli
    from apps.myapp import verbs
    raise SystemExit(cli.main(verbs.APP, verbs.VERBS, verbs.MAIN))
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import math
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from apps.common import distribute
from apps.common.config import SIZES, AppConfig
from apps.common.errors import UsageError
from apps.common.rundir import BACKUP_SUBDIR, RunDir, check_backup, default_run_dir
from apps.common.sources import Source, parse_source


@dataclasses.dataclass(frozen=True)
class AppSpec:
    """What the skeleton needs to know about an app.

    Attributes:
        module: the app's module name, recorded in run dirs (``"apps.sentiment"``).
        description: one paragraph for ``--help``.
        config_cls: the app's :class:`~apps.common.config.AppConfig` subclass.
        builtin_data: the names ``builtin:NAME`` accepts.
        default_size: the preset used when ``--size`` is not given.
        add_config_flags: adds app-specific train flags; a flag whose ``dest`` is a config field
            (default ``None``) overrides that field.
        check_config: extra validation of a resolved config (e.g. the model name), run before
            anything is written; raises :class:`UsageError`.
    """

    module: str
    description: str
    config_cls: type[AppConfig]
    builtin_data: tuple[str, ...] = ()
    default_size: str = "small"
    add_config_flags: Callable[[argparse.ArgumentParser], None] | None = None
    check_config: Callable[[Any], None] | None = None

    @property
    def prog(self) -> str:
        return f"python -m {self.module}"


@dataclasses.dataclass(frozen=True)
class Verb:
    """One command of an app.

    Attributes:
        name: the word typed after the app (``"train"``); the main job's name is unused.
        help: one line for the command list.
        add_arguments: adds the verb's flags to its parser.
        run: does the work; returns an exit status or ``None`` (0).
        check: optional pure-Python validation/preparation run before TensorFlow is imported
            (raise :class:`UsageError`; results may be stored on ``args``).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    check: Callable[[argparse.Namespace], None] | None = None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every flag's default; a help text that already says ``(default: ...)`` is kept."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or not action.option_strings or action.required:
            return text
        if action.default is None:
            return text + " (default: none)"
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


# ------------------------------------------------------------------ value types
def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)


def float_in(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` accepting floats in ``[low, high]`` (``(low, high]`` if open)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if math.isnan(value) or not (low < value if low_open else low <= value) or value > high:
            lo = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must be in {lo}{low}, {high}], got {text!r}")
        return value

    parse.__name__ = "float"
    return parse


# ---------------------------------------------------------------- flag groups
def _preset(app: AppSpec) -> AppConfig:
    return app.config_cls.preset(app.default_size)


def add_train_arguments(
    parser: argparse.ArgumentParser, app: AppSpec, *, exclude: Sequence[str] = ()
) -> None:
    """The common train flags: ``--data --model --epochs --batch-size --run-dir --seed --config
    --size --quiet`` plus the app's own (``AppSpec.add_config_flags``).

    Flags that set config fields default to ``None`` (= "not given"), and their help shows the
    value of the default preset. ``exclude`` names config fields to leave out (e.g. ``model``
    for a command that takes several models).
    """
    fields = {k: v for k, v in app.config_cls.field_types().items() if k not in exclude}
    shown = default_shown(_preset(app), app.default_size)

    if "data" in fields:
        parser.add_argument(
            "--data",
            metavar="SRC",
            help="training data: builtin:NAME, tfds:NAME[:SPLIT] or a path " + shown("data"),
        )
    if "model" in fields:
        parser.add_argument("--model", metavar="NAME", help="model to train " + shown("model"))
    if "epochs" in fields:
        parser.add_argument(
            "--epochs",
            type=positive_int,
            metavar="N",
            help="total epochs (a resumed run trains the missing ones) " + shown("epochs"),
        )
    if "batch_size" in fields:
        parser.add_argument(
            "--batch-size",
            dest="batch_size",
            type=positive_int,
            metavar="N",
            help="examples per batch " + shown("batch_size"),
        )
    parser.add_argument(
        "--run-dir",
        metavar="DIR",
        type=Path,
        help="run directory; an existing one of this app resumes "
        f"(default: runs/{app.module.rsplit('.', 1)[-1]}/<timestamp>/)",
    )
    if "seed" in fields:
        parser.add_argument(
            "--seed",
            type=nonnegative_int,
            metavar="N",
            help="seed for weights, shuffling and splits " + shown("seed"),
        )
    parser.add_argument(
        "--config",
        metavar="FILE.json",
        type=Path,
        help="JSON config keys over the --size preset (a run dir's config.json "
        "works too); explicit flags override it",
    )
    parser.add_argument(
        "--size", choices=SIZES, help=f"config preset (default: {app.default_size})"
    )
    if app.add_config_flags is not None:
        app.add_config_flags(parser)
    parser.add_argument(
        "--distribute",
        choices=distribute.CHOICES,
        default="none",
        help="data-parallel training: mirrored (this machine's devices) or multiworker "
        "(one process per worker, cluster from TF_CONFIG; --batch-size is the global batch; "
        "worker i > 0 writes DIR.worker<i>)",
    )
    add_quiet_argument(parser)


def add_run_dir_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--run-dir DIR`` for verbs working on a trained run."""
    parser.add_argument(
        "--run-dir",
        metavar="DIR",
        type=Path,
        required=required,
        help="run directory written by train",
    )


def add_data_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--data SRC`` defaulting to the run's own data (``None``)."""
    parser.add_argument(
        "--data", metavar="SRC", help=help_text + " (default: the data the run was trained on)"
    )


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


# ----------------------------------------------------------------- ensembles
def add_ensemble_arguments(
    parser: argparse.ArgumentParser, *, members_help: str, data_help: str
) -> None:
    """An ``ensemble`` verb's flags: ``--run-dir DIR`` (a new folder), ``RUN [RUN ...]``,
    ``--data SRC``, ``--quiet``."""
    parser.add_argument("--run-dir", metavar="DIR", type=Path, required=True,
                        help="new run directory for the ensemble")  # fmt: skip
    parser.add_argument("members", nargs="+", type=Path, metavar="RUN", help=members_help)
    parser.add_argument("--data", metavar="SRC", help=data_help)
    add_quiet_argument(parser)


def open_members(paths: Sequence[Path], open_run: Callable[[Path], RunDir]) -> list[RunDir]:
    """Two or more member runs opened with ``open_run``; its ``--run-dir`` errors name ``RUN``.

    Raises:
        UsageError: fewer than two paths, or a path ``open_run`` refuses.
    """
    from apps.common.errors import RunDirError

    if len(paths) < 2:
        raise UsageError(f"RUN: an ensemble needs two or more runs, got {len(paths)}")
    runs = []
    for path in paths:
        try:
            runs.append(open_run(path))
        except RunDirError as e:
            raise UsageError(str(e).replace("--run-dir", "RUN", 1)) from None
    return runs


def check_new_folder(path: Path, flag: str = "--run-dir") -> None:
    """Refuse an existing non-empty folder (or a file) where a new run dir is to be written."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{flag}: {path} exists and is not empty; give a new folder")


def hide_retracing_warnings() -> None:
    """Silence TensorFlow's Python warnings about retracing (an ensemble's members each run
    through a ``tf.function`` of their own, which TensorFlow reports as excessive retracing)."""
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)


# ----------------------------------------------------------- config + run dir
def check_source(app: AppSpec, spec: str, *, flag: str = "--data") -> Source:
    """``parse_source`` with the app's builtin names."""
    return parse_source(spec, app.builtin_data, flag=flag)


def config_from_args(app: AppSpec, args: argparse.Namespace) -> AppConfig:
    """Preset (``--size``) < ``--config`` < explicit flags; ``--data`` and
    ``AppSpec.check_config`` are checked."""
    overrides = explicit_overrides(app, args)
    config = app.config_cls.resolve(args.size or app.default_size, args.config, overrides)
    _check_config(app, config)
    return config


def _check_config(app: AppSpec, config: AppConfig) -> None:
    if hasattr(config, "data"):
        check_source(app, config.data)
    if app.check_config is not None:
        app.check_config(config)


def explicit_overrides(app: AppSpec, args: argparse.Namespace) -> dict[str, Any]:
    """Config fields given explicitly on the command line (flags whose dest is a field)."""
    fields = app.config_cls.field_types()
    return {k: v for k, v in vars(args).items() if k in fields and v is not None}


def default_shown(
    preset: AppConfig, size: str = "small", *, none: str = "none"
) -> Callable[[str], str]:
    """``shown(field)``: the help suffix naming a config field's value in the default preset.

    Every flag that sets a config field defaults to ``None`` ("not given"), so its help says
    where the value comes from instead: ``shown("units")`` -> ``"(default: 64, from --size
    small)"``; a ``None`` value reads as ``none`` (e.g. ``"all"`` for a limit).
    """

    def shown(field: str) -> str:
        value = getattr(preset, field)
        return f"(default: {none if value is None else value}, from --size {size})"

    return shown


def prepare_training(app: AppSpec, args: argparse.Namespace) -> tuple[AppConfig, RunDir, bool]:
    """Resolve the config and the run dir for a train command.

    A new run dir gets the resolved config. An existing run dir of the app keeps its own
    config: flags (and ``--size`` / ``--config`` when given) may change only the fields in
    ``config_cls.RESUMABLE`` (e.g. ``epochs``); anything else is a :class:`UsageError`, so a
    resumed run cannot silently change the architecture. A damaged checkpoint is refused
    (:func:`~apps.common.rundir.check_backup`) before the config is rewritten.

    A new run dir is noted on ``args``: when the command then fails before training wrote a
    model or a checkpoint (bad data found while loading it, say), :func:`main` removes it again,
    so a failed start leaves no run dir whose config would pin the next attempt.

    Returns:
        ``(config, run_dir, resumed)``; ``config.json`` is written.
    """
    path = args.run_dir if args.run_dir is not None else default_run_dir(app.module)
    path = distribute.worker_run_dir(path, getattr(args, "distribute", "none"))
    existing = Path(path).is_dir() and RunDir.owner(path) is not None
    if not existing:
        config = config_from_args(app, args)
        created = _missing_folders(Path(path))
        run = RunDir.prepare(path, app.module)  # refuses a folder that is neither new nor empty
        args.fresh_run_dir = created
        run.write_config(config.to_dict())
        return config, run, False
    run = RunDir.open(path, app.module)
    check_backup(run.checkpoints / BACKUP_SUBDIR)
    saved = app.config_cls.from_dict(run.read_config(), source=f"{run.config_json}")
    if args.size is not None or args.config is not None:
        wanted = config_from_args(app, args)
    else:
        wanted = saved.replace(**explicit_overrides(app, args))
        _check_config(app, wanted)
    changed = {
        k: v for k, v in saved.differences(wanted).items() if k not in app.config_cls.RESUMABLE
    }
    if changed:
        what = ", ".join(f"{k}={old!r} -> {new!r}" for k, (old, new) in changed.items())
        may = ", ".join(app.config_cls.RESUMABLE) or "nothing"
        raise UsageError(
            f"--run-dir: {path} was trained with another config ({what}); resuming may change "
            f"only {may} — give a new --run-dir"
        )
    run.ensure_layout()
    if wanted != saved:
        run.write_config(wanted.to_dict())
    return wanted, run, True


def _missing_folders(path: Path) -> tuple[Path, list[Path]]:
    """``(path, [path and its ancestors that do not exist yet, deepest first])``."""
    return path, [p for p in (path, *path.parents) if not p.exists()]


def _discard_unstarted_run(args: argparse.Namespace | None) -> None:
    """Undo :func:`prepare_training`'s new run dir when nothing was trained in it.

    Only a run dir this command created (or an empty folder it filled) is touched, and only
    while it holds no ``model.keras`` and no checkpoint file; the folders created above it are
    removed when they are empty.
    """
    fresh = getattr(args, "fresh_run_dir", None)
    if fresh is None:
        return
    path, created = fresh
    if not path.is_dir() or (path / "model.keras").exists():
        return
    if any(p.is_file() for p in (path / "checkpoints").rglob("*")):
        return
    with contextlib.suppress(OSError):  # best effort: the failure being reported matters more
        if path not in created:  # the empty folder the user gave: empty it again
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            return
        shutil.rmtree(path)
        for folder in created[1:]:
            folder.rmdir()  # OSError once a folder is not empty: something else lives there


# ------------------------------------------------------------------ backend
def import_backend(*, show_logs: bool | None = None) -> None:
    """Import TensorFlow and Keras with their start-up log lines hidden.

    TensorFlow writes C++ log lines to stderr while it loads (before its log level applies);
    apps promise one clean line on stderr for bad input, so the skeleton imports it with file
    descriptor 2 pointed at ``/dev/null``, and sets ``TF_CPP_MIN_LOG_LEVEL=3`` for the C++
    lines TensorFlow writes later. Python exceptions raised by the import still show.
    ``RNNSUITE_TF_LOGS=1`` (or ``show_logs=True``) keeps all of them.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if show_logs is None:
        show_logs = os.environ.get("RNNSUITE_TF_LOGS", "") not in ("", "0")
    if not show_logs:  # also TF's spurious C++ "E" lines (e.g. oneDNN's DT_BOOL notice)
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if show_logs or "tensorflow" in sys.modules:
        importlib.import_module("keras")
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (embedded interpreters)
        importlib.import_module("keras")
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        tf = importlib.import_module("tensorflow")
        tf.config.list_physical_devices()  # device probing logs here too
        importlib.import_module("keras")
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# --------------------------------------------------------------------- main
def build_parser(
    app: AppSpec, verb: Verb, verbs: Sequence[Verb], *, is_main: bool
) -> ArgumentParser:
    """The parser of one verb (or of the main job, whose help lists the verbs)."""
    if is_main:
        listing = "\n".join(f"  {v.name:<10} {v.help}" for v in verbs)
        parser = ArgumentParser(
            prog=app.prog,
            description=f"{app.description}\n\nWith no command: {verb.help}",
            epilog=f"commands:\n{listing}\n\nRun '{app.prog} COMMAND --help' for its flags.",
            formatter_class=HelpFormatter,
        )
    else:
        parser = ArgumentParser(
            prog=f"{app.prog} {verb.name}", description=verb.help, formatter_class=HelpFormatter
        )
    verb.add_arguments(parser)
    return parser


def _one_line(message: object) -> str:
    return " ".join(str(message).split()) or "bad usage"


def main(
    app: AppSpec, verbs: Sequence[Verb], main_job: Verb, argv: Sequence[str] | None = None
) -> int:
    """Parse ``argv``, run the verb (or the main job), map errors to exit status.

    Returns:
        0 when done, 2 for a :class:`UsageError` (one line on stderr), 1 for anything else
        (traceback on stderr), 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    by_name = {v.name: v for v in verbs}
    args = None
    try:
        if argv and argv[0] in by_name:
            verb, rest, is_main = by_name[argv[0]], argv[1:], False
        elif argv and not argv[0].startswith("-"):
            raise UsageError(
                f"unknown command {argv[0]!r} (choose from {', '.join(by_name)}; "
                f"no command runs the main job; see {app.prog} --help)"
            )
        else:
            verb, rest, is_main = main_job, argv, True
        parser = build_parser(app, verb, verbs, is_main=is_main)
        args = parser.parse_args(rest)
        args.app = app
        if verb.check is not None:
            verb.check(args)
        import_backend()
        distribute.use(getattr(args, "distribute", "none"))
        try:
            status = verb.run(args)
        finally:
            distribute.use("none")
        return int(status or 0)
    except UsageError as e:
        _discard_unstarted_run(args)
        sys.stdout.flush()
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except KeyboardInterrupt:
        _discard_unstarted_run(args)
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - any other failure: exit 1 with its traceback
        _discard_unstarted_run(args)
        traceback.print_exc()
        return 1

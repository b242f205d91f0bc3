"""``python -m tuning``: cell search (main job), hyperparameter search, genotype drawing.

Each command checks its input before TensorFlow loads (bad input: one line, exit 2), then runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from apps.common import cli
from apps.common.errors import UsageError
from apps.common.rundir import RunDir, default_run_dir
from tuning import distributed as dist
from tuning.config import (
    HPARAM_APPS,
    HPARAM_ORACLES,
    STRATEGIES,
    TASKS,
    CellSearchConfig,
    HparamSearchConfig,
)

DESCRIPTION = (
    "Searches with keras-tuner: cell structures (CellGenotype graphs, the search that found\n"
    "the MUT cells) against tuned LSTM/GRU baselines, and hyperparameters of an app's models.\n"
    "Distributed: run the same command with --distributed chief on one process and\n"
    "--distributed worker --tuner-id ID on others (keras-tuner's gRPC chief/worker mode)."
)
CELLS_APP = cli.AppSpec(module="tuning.cells", description=DESCRIPTION, config_cls=CellSearchConfig)
HPARAMS_APP = cli.AppSpec(
    module="tuning.hparams", description=DESCRIPTION, config_cls=HparamSearchConfig
)
APP = cli.AppSpec(module="tuning", description=DESCRIPTION, config_cls=CellSearchConfig)


def _log(args: argparse.Namespace):
    return None if args.quiet else _print_err


def _print_err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _names(text: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    if not items:
        raise argparse.ArgumentTypeError("give a comma-separated list")
    return items


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(s) for s in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated integers, got {text!r}"
        ) from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be integers >= 1, got {text!r}")
    return values


def _shown(config_cls: Any, field: str) -> str:
    value = getattr(config_cls.small(), field)
    if isinstance(value, tuple):
        value = ",".join(map(str, value))
    return f"(default: {'none' if value is None else value}, from --size small)"


# ---------------------------------------------------------------- shared flag groups
def _add_common(parser: argparse.ArgumentParser, config_cls: Any) -> None:
    parser.add_argument(
        "--run-dir",
        type=Path,
        metavar="DIR",
        help="run directory; re-running the same command on it resumes the "
        "search (default: runs/tuning/<timestamp>/)",
    )
    parser.add_argument(
        "--seed",
        type=cli.nonnegative_int,
        metavar="N",
        help="seed of the oracles, data order and weights " + _shown(config_cls, "seed"),
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE.json",
        help="JSON config keys over the --size preset; flags override it",
    )
    parser.add_argument(
        "--size", choices=("tiny", "small", "base"), help="config preset (default: small)"
    )
    cli.add_quiet_argument(parser)


def _add_distributed(parser: argparse.ArgumentParser) -> None:
    env = dist.env_defaults()
    group = parser.add_argument_group(
        "distributed search (keras-tuner chief/worker over gRPC)",
        "Start the chief, then any number of workers with the same search flags. The flags "
        "set KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT (and default "
        "to them). The chief serves the oracle and writes the results; workers train. The "
        "channel is unencrypted: keep it on loopback or a trusted network.",
    )
    group.add_argument(
        "--distributed",
        choices=dist.ROLES,
        default=env.get("role"),
        help="this process' role (default: from KERASTUNER_* if set, else a local search)",
    )
    group.add_argument(
        "--oracle-ip",
        default=env.get("host", "127.0.0.1"),
        metavar="IP",
        help="the chief's address",
    )
    group.add_argument(
        "--oracle-port",
        type=cli.positive_int,
        default=env.get("port", 8000),
        metavar="PORT",
        help="the chief's port",
    )
    group.add_argument(
        "--tuner-id",
        default=env.get("tuner_id"),
        metavar="ID",
        help="this process' id: must contain 'chief' for the chief, not for a "
        "worker (default: chief / worker-<pid>)",
    )
    group.add_argument(
        "--worker-timeout",
        type=cli.float_in(1.0, 86400.0),
        default=120.0,
        metavar="S",
        help="chief: a worker silent this long is dropped and its trial requeued",
    )
    group.add_argument(
        "--connect-retries",
        type=cli.positive_int,
        default=20,
        metavar="N",
        help="worker: attempts to reach the chief before giving up (exit 2)",
    )
    group.add_argument(
        "--connect-timeout",
        type=cli.float_in(0.1, 600.0),
        default=3.0,
        metavar="S",
        help="worker: seconds per attempt",
    )


def _distributed_settings(args: argparse.Namespace) -> dist.Distributed | None:
    if args.distributed is None:
        return None
    tuner_id = args.tuner_id or (
        "chief" if args.distributed == "chief" else f"worker-{os.getpid()}"
    )
    settings = dist.Distributed(
        role=args.distributed,
        host=args.oracle_ip,
        port=args.oracle_port,
        tuner_id=tuner_id,
        worker_timeout=args.worker_timeout,
        connect_retries=args.connect_retries,
        connect_timeout=args.connect_timeout,
    )
    dist.check_settings(settings)
    return settings


def _prepare(app: cli.AppSpec, args: argparse.Namespace, check: Any = None) -> None:
    if args.run_dir is None:
        args.run_dir = default_run_dir("tuning")
    args.settings = _distributed_settings(args)
    if args.settings is not None and args.settings.role == "worker":
        dist.wait_for_chief(args.settings, log=_log(args))
    args.prepared = prepare_search(app, args, check)


def prepare_search(
    app: cli.AppSpec, args: argparse.Namespace, check: Any = None
) -> tuple[Any, RunDir, bool]:
    """Resolve the config (preset < --config < flags) and open or create the run dir.

    Like :func:`apps.common.cli.prepare_training` (whose ``--data`` check does not apply: a
    search's ``data`` may be unset, meaning the task's default). An existing run dir of this
    search keeps its config: only ``trials`` may change on a resume. ``check(config)`` runs
    before anything is written.
    """
    overrides = cli.explicit_overrides(app, args)
    overrides.pop("app", None)  # args.app is the AppSpec (apps.common.cli); --app is app_name
    if getattr(args, "app_name", None) is not None:
        overrides["app"] = args.app_name
    wanted = app.config_cls.resolve(args.size or app.default_size, args.config, overrides)
    path = Path(args.run_dir)
    if not (path.is_dir() and RunDir.owner(path) is not None):
        if check is not None:
            check(wanted)
        run = RunDir.prepare(path, app.module)
        run.write_config(wanted.to_dict())
        return wanted, run, False
    run = RunDir.open(path, app.module)
    saved = app.config_cls.from_dict(run.read_config(), source=str(run.config_json))
    if args.size is None and args.config is None:
        wanted = saved.replace(**overrides)
    changed = {
        k: v for k, v in saved.differences(wanted).items() if k not in app.config_cls.RESUMABLE
    }
    if changed:
        what = ", ".join(f"{k}={old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise UsageError(
            f"--run-dir: {path} holds a search with another config ({what}); a resumed search "
            f"may change only {', '.join(app.config_cls.RESUMABLE)} — give a new --run-dir"
        )
    if check is not None:
        check(wanted)
    run.ensure_layout()
    if wanted != saved:
        run.write_config(wanted.to_dict())
    return wanted, run, True


# --------------------------------------------------------------------------- cells
def _add_cells(parser: argparse.ArgumentParser) -> None:
    c = CellSearchConfig
    parser.add_argument(
        "--task",
        choices=TASKS,
        help="what every candidate is trained on: "
        "charlm (bits/char), jsb (NLL/frame), sentiment (accuracy) " + _shown(c, "task"),
    )
    parser.add_argument(
        "--data",
        metavar="SRC",
        help="the task's data: builtin:pysource or a text file (charlm), a "
        "piano-roll JSON (jsb; default: the shared JSB Chorales), "
        "builtin:tweets or another sentiment source (default: the task's "
        "own)",
    )
    parser.add_argument(
        "--strategies",
        type=_names,
        metavar="LIST",
        help=f"comma-separated, run in order, from {', '.join(STRATEGIES)} "
        + _shown(c, "strategies"),
    )
    parser.add_argument(
        "--trials",
        type=cli.positive_int,
        metavar="N",
        help="trials per strategy (the same for all; may grow on a resume) " + _shown(c, "trials"),
    )
    parser.add_argument(
        "--param-budget",
        dest="param_budget",
        type=cli.positive_int,
        metavar="P",
        help="weights of each candidate's recurrent block " + _shown(c, "param_budget"),
    )
    parser.add_argument(
        "--steps",
        type=cli.positive_int,
        metavar="N",
        help="most training steps per trial " + _shown(c, "steps"),
    )
    parser.add_argument(
        "--eval-every",
        dest="eval_every",
        type=cli.positive_int,
        metavar="N",
        help="steps between validations " + _shown(c, "eval_every"),
    )
    parser.add_argument(
        "--patience",
        type=cli.nonnegative_int,
        metavar="N",
        help="validations without improvement before a trial stops " + _shown(c, "patience"),
    )
    parser.add_argument(
        "--batch-size",
        dest="batch_size",
        type=cli.positive_int,
        metavar="N",
        help="examples per step " + _shown(c, "batch_size"),
    )
    parser.add_argument(
        "--seq-len",
        dest="seq_len",
        type=cli.int_at_least(2),
        metavar="N",
        help="training window length (charlm, jsb) " + _shown(c, "seq_len"),
    )
    parser.add_argument(
        "--learning-rate",
        dest="learning_rate",
        type=cli.float_in(0.0, 10.0, low_open=True),
        metavar="LR",
        help="Adam's rate for searched cells; the baselines tune theirs in "
        "[LR/4, 4 LR] " + _shown(c, "learning_rate"),
    )
    parser.add_argument(
        "--max-nodes",
        dest="max_nodes",
        type=cli.positive_int,
        metavar="N",
        help="node slots of the genotype encoding " + _shown(c, "max_nodes"),
    )
    parser.add_argument(
        "--population",
        type=cli.positive_int,
        metavar="N",
        help="evolution: parents are drawn from the N best so far " + _shown(c, "population"),
    )
    parser.add_argument(
        "--embedding-dim",
        dest="embedding_dim",
        type=cli.positive_int,
        metavar="N",
        help="cell input width for charlm / sentiment " + _shown(c, "embedding_dim"),
    )
    parser.add_argument(
        "--max-chars",
        dest="max_chars",
        type=cli.int_at_least(100),
        metavar="N",
        help="characters read for charlm " + _shown(c, "max_chars"),
    )
    parser.add_argument(
        "--limit",
        type=cli.positive_int,
        metavar="N",
        help="pieces (jsb) or examples (sentiment) per split " + _shown(c, "limit"),
    )
    parser.add_argument(
        "--init",
        action="append",
        metavar="GENOTYPE.json",
        help="add a genotype to the evolution's starting population "
        "(repeatable; default: the LSTM, GRU and MUT1-3 presets only)",
    )
    parser.add_argument(
        "--bare-x",
        dest="bare_x",
        action="store_const",
        const=True,
        help="let x enter nodes without a matrix (MUT1/MUT2-like cells; the task projects x "
        "to units, counted in the budget; apps must then feed units-wide inputs) "
        + _shown(c, "bare_x"),
    )
    _add_common(parser, c)
    _add_distributed(parser)


def _check_cells(args: argparse.Namespace) -> None:
    _prepare(CELLS_APP, args, _check_cell_config)


def _check_cell_config(config: CellSearchConfig) -> None:
    """Data, ``--init`` genotypes and the budget, before the run dir is written."""
    from tuning.sources import resolve_data

    resolve_data(config.task, config.data)
    for path in config.init:
        _check_json_file(path, "--init")
    cli.import_backend()  # genotypes and budgets need seqlayers (keras)
    from tuning.cell_search import check_budget, evolution_seeds

    check_budget(config, evolution_seeds(config))


def _check_json_file(path: str, flag: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{flag}: no such genotype file: {p}")
    try:
        json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{flag}: {p} is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{flag}: {p} is not valid JSON: {e.msg} at line {e.lineno}") from None


def _run_cells(args: argparse.Namespace) -> None:
    from tuning.cell_search import run_cell_search

    config, run, resumed = args.prepared
    log = _log(args)
    if resumed and log is not None:
        log(f"resuming the search in {run.path}")
    summary = run_cell_search(config, run, distributed=args.settings, log=log)
    if args.settings is not None and args.settings.role == "worker":
        print(f"worker {args.settings.tuner_id}: done")
        return
    _print_cells_summary(summary, run.path)


def _print_cells_summary(summary: dict[str, Any], path: Path) -> None:
    better = "lower" if summary.get("direction") == "min" else "higher"
    print(f"{summary['metric']}, {better} is better; best of each strategy:")
    for strategy, s in summary["strategies"].items():
        best = "—" if s["best"] is None else f"{s['best']:.4f}"
        print(
            f"  {strategy:<10} {best}  {s['best_cell'] or ''} {s['best_fingerprint'] or ''} "
            f"({s['trained']} trained, {s['reused']} reused, {s['failed']} failed)"
        )
    timing = summary.get("timing") or {}
    if timing.get("trials_per_hour"):
        print(
            f"{timing['trials_per_hour']:.0f} trials/hour; search overhead "
            f"{100 * (timing['overhead_fraction'] or 0):.2f}% of trial time"
        )
    best = summary.get("best")
    if best:
        print(
            f"best cell: {best['cell']} {best['fingerprint']} ({best['strategy']}) -> "
            f"{best['genotype']}  (use --cell genotype:{best['genotype']} in the apps)"
        )
    print(f"leaderboard: {path / 'leaderboard.md'}")
    print(f"run dir: {path}")


# ------------------------------------------------------------------------- hparams
def _add_hparams(parser: argparse.ArgumentParser) -> None:
    h = HparamSearchConfig
    parser.add_argument(
        "--app",
        dest="app_name",
        choices=HPARAM_APPS,
        help="whose models are tuned " + _shown(h, "app"),
    )
    parser.add_argument(
        "--oracle",
        choices=HPARAM_ORACLES,
        help="random (RandomSearch), bayesian (BayesianOptimization) or "
        "hyperband " + _shown(h, "oracle"),
    )
    parser.add_argument("--data", metavar="SRC", help="the app's data (default: the app's own)")
    parser.add_argument(
        "--limit",
        type=cli.int_at_least(10),
        metavar="N",
        help="examples per split " + _shown(h, "limit"),
    )
    parser.add_argument(
        "--trials",
        type=cli.positive_int,
        metavar="N",
        help="trials (random, bayesian) " + _shown(h, "trials"),
    )
    parser.add_argument(
        "--epochs",
        type=cli.positive_int,
        metavar="N",
        help="epochs per trial (Hyperband: max epochs) " + _shown(h, "epochs"),
    )
    parser.add_argument(
        "--cells",
        type=_names,
        metavar="LIST",
        help="model kinds to choose from " + _shown(h, "cells"),
    )
    parser.add_argument(
        "--units",
        type=_ints,
        metavar="LIST",
        help="hidden sizes to choose from " + _shown(h, "units"),
    )
    parser.add_argument(
        "--max-layers",
        dest="max_layers",
        type=cli.positive_int,
        metavar="N",
        help="stacked recurrent layers, 1..N " + _shown(h, "max_layers"),
    )
    parser.add_argument(
        "--batch-sizes",
        dest="batch_sizes",
        type=_ints,
        metavar="LIST",
        help="batch sizes to choose from " + _shown(h, "batch_sizes"),
    )
    _add_common(parser, h)
    _add_distributed(parser)


def _check_hparams(args: argparse.Namespace) -> None:
    _prepare(HPARAMS_APP, args, _check_hparam_config)


def _check_hparam_config(config: HparamSearchConfig) -> None:
    if config.data is not None:
        from apps.common.sources import parse_source

        parse_source(config.data, ("tweets",))


def _run_hparams(args: argparse.Namespace) -> None:
    from tuning.hparams import run_hparam_search

    config, run, resumed = args.prepared
    log = _log(args)
    if resumed and log is not None:
        log(f"resuming the search in {run.path}")
    summary = run_hparam_search(config, run, distributed=args.settings, log=log)
    if args.settings is not None and args.settings.role == "worker":
        print(f"worker {args.settings.tuner_id}: done")
        return
    best = summary.get("best")
    if best:
        print(
            f"best {summary['objective']}: {best['score']:.4f} with "
            + ", ".join(f"{k}={v}" for k, v in best["values"].items())
        )
        if summary.get("app_config_note"):
            print(f"note: {summary['app_config_note']}")
        if summary.get("app_config"):
            print(
                f"app config: {summary['app_config']} (python -m apps.{config.app} train "
                f"--config {summary['app_config']})"
            )
    print(f"leaderboard: {run.path / 'leaderboard.md'}")
    print(f"run dir: {run.path}")


# ---------------------------------------------------------------------------- draw
def _add_draw(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "genotype",
        metavar="GENOTYPE.json",
        help="a genotype file (best_genotype.json of a search, or your own)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="PNG", help="picture to write (default: beside the JSON, .png)"
    )
    parser.add_argument(
        "--input-dim",
        dest="input_dim",
        type=cli.positive_int,
        default=32,
        metavar="N",
        help="input width for the parameter count",
    )
    parser.add_argument(
        "--units",
        type=cli.positive_int,
        default=32,
        metavar="N",
        help="hidden size for the parameter count",
    )
    parser.add_argument(
        "--param-budget",
        dest="param_budget",
        type=cli.positive_int,
        metavar="P",
        help="also print the units that fit this budget",
    )
    cli.add_quiet_argument(parser)


def _check_draw(args: argparse.Namespace) -> None:
    _check_json_file(args.genotype, "genotype")


def _run_draw(args: argparse.Namespace) -> None:
    from tuning.budget import block_params, size_for_budget
    from tuning.cell_search import load_genotype_file
    from tuning.draw import draw_genotype
    from tuning.encoding import describe

    genotype = load_genotype_file(args.genotype, flag="genotype")
    out = args.out or Path(args.genotype).with_suffix(".png")
    print(genotype.equations())
    print(
        f"cell: {describe(genotype)}, fingerprint {genotype.fingerprint()}, "
        f"{len(genotype.nodes)} nodes{', carries c' if genotype.uses_c else ''}"
    )
    print(
        f"params at {args.units} units on {args.input_dim} inputs: "
        f"{block_params(genotype, args.input_dim, args.units):,}"
        + (" (x projected to units first)" if genotype.bare_x_nodes else "")
    )
    if args.param_budget is not None:
        try:
            sizing = size_for_budget(genotype, args.input_dim, args.param_budget)
        except ValueError as e:
            raise UsageError(f"--param-budget: {e}") from None
        print(f"budget {args.param_budget:,}: {sizing.units} units, {sizing.params:,} params")
    draw_genotype(genotype, out)
    print(f"picture: {out}")


MAIN = cli.Verb(
    "cells",
    "a cell search on the default task (python stdlib text, bits/char): evolution and random "
    "search over cell graphs vs tuned LSTM and GRU",
    _add_cells,
    _run_cells,
    _check_cells,
)
VERBS = (
    cli.Verb(
        "cells",
        "search cell structures (CellGenotype graphs) on a task",
        _add_cells,
        _run_cells,
        _check_cells,
    ),
    cli.Verb(
        "hparams",
        "search hyperparameters of an app's models (keras-tuner oracles)",
        _add_hparams,
        _run_hparams,
        _check_hparams,
    ),
    cli.Verb(
        "draw",
        "print a genotype's equations and parameter count, and draw it",
        _add_draw,
        _run_draw,
        _check_draw,
    ),
)


def main(argv: list[str] | None = None) -> int:
    """Entry point (``python -m tuning``); returns the exit status."""
    return cli.main(APP, VERBS, MAIN, argv)

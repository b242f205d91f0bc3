"""The music app's commands: main job, train, evaluate, generate, ensemble.

Each command validates its input in a ``check`` step (pure Python, before TensorFlow loads),
then runs. Results go to stdout; warnings and errors to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from apps.common import cli
from apps.common.cells import parse_cell_name
from apps.common.errors import UsageError
from apps.common.rundir import RunDir, atomic_write_json
from apps.music.config import BUILTIN_DATA, CELL_CHOICES, REPRESENTATIONS, MusicConfig

APP_MODULE = "apps.music"
MAX_LENGTH = 20000
MAX_COUNT = 100
MAIN_QUARTERS = 64  # the main job writes a sample this many quarter notes long
DEFAULT_EVENT_NOTES = 200
DESCRIPTION = (
    "Music generation with recurrent networks, Bach chorales to Chopin: a piano-roll model\n"
    "(88 independent sigmoids per time step) or a note-event model (step, pitch, duration\n"
    "tokens); writes MIDI, a piano-roll PNG and a WAV for every generated piece."
)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _log(quiet: bool):
    return None if quiet else print


# ------------------------------------------------------------------- app wiring
def _check_config(config: MusicConfig) -> None:
    from apps.music.data import check_data_spec

    if config.members:
        raise UsageError("--config: an ensemble is made by `python -m apps.music ensemble` from "
                         "trained runs, not trained")  # fmt: skip
    parse_cell_name(config.cell, flag="--cell", allow_bidirectional=False)
    check_data_spec(config.data, config.representation)


def _config_flags(parser: argparse.ArgumentParser) -> None:
    shown = cli.default_shown(MusicConfig.small())

    parser.add_argument(
        "--repr",
        dest="representation",
        choices=REPRESENTATIONS,
        help="roll: 88-key piano roll, independent sigmoids; events: (step, "
        "pitch, duration) tokens " + shown("representation"),
    )
    parser.add_argument(
        "--cell", metavar="NAME", help=f"recurrent cell: {', '.join(CELL_CHOICES)} " + shown("cell")
    )
    parser.add_argument(
        "--units", type=cli.positive_int, metavar="N", help="hidden size " + shown("units")
    )
    parser.add_argument(
        "--layers",
        type=cli.positive_int,
        metavar="N",
        help="stacked recurrent layers " + shown("layers"),
    )
    parser.add_argument(
        "--dropout",
        type=cli.float_in(0.0, 0.99),
        metavar="RATE",
        help="dropout after each recurrent layer " + shown("dropout"),
    )
    parser.add_argument(
        "--seq-len",
        dest="seq_len",
        type=cli.int_at_least(2),
        metavar="N",
        help="training window (steps or tokens) and primer context " + shown("seq_len"),
    )
    parser.add_argument(
        "--steps-per-quarter",
        dest="steps_per_quarter",
        type=cli.positive_int,
        metavar="N",
        help="roll frames per quarter note (1 for the JSB "
        "'quarter' file) " + shown("steps_per_quarter"),
    )
    parser.add_argument(
        "--limit",
        type=cli.int_at_least(3),
        metavar="N",
        help="use at most N pieces (per split for a roll file) " + shown("limit"),
    )
    parser.add_argument("--learning-rate", dest="learning_rate", metavar="LR",
                        type=cli.float_in(0.0, 10.0, low_open=True),
                        help="Adam learning rate " + shown("learning_rate"))  # fmt: skip
    parser.add_argument("--weight-noise", dest="weight_noise", metavar="STD",
                        type=cli.float_in(0.0, 1.0),
                        help="Gaussian noise on every weight at each training step "
                        + shown("weight_noise"))  # fmt: skip
    parser.add_argument("--transpose", type=cli.nonnegative_int, metavar="K",
                        help="roll: shift each training window by a random -K..K semitones "
                        "(a new draw every epoch) " + shown("transpose"))  # fmt: skip


APP = cli.AppSpec(
    module=APP_MODULE,
    description=DESCRIPTION,
    config_cls=MusicConfig,
    builtin_data=BUILTIN_DATA,
    default_size="small",
    add_config_flags=_config_flags,
    check_config=_check_config,
)


def _open_run(path: Path) -> RunDir:
    run = RunDir.open(path, APP_MODULE)
    run.require_model()
    return run


def _open_roll_run(path: Path) -> RunDir:
    """A trained piano-roll run (an ensemble member)."""
    from apps.music.train import read_run_config

    run = _open_run(path)
    representation = read_run_config(run)[0].representation
    if representation != "roll":
        raise UsageError(f"RUN: {path} is an {representation} run, not a piano-roll (roll) run")
    return run


# ------------------------------------------------------------------------- train
def _add_train(parser: argparse.ArgumentParser) -> None:
    cli.add_train_arguments(parser, APP)


def _check_train(args: argparse.Namespace) -> None:
    from apps.music.data import check_data_spec

    if args.data is not None:
        check_data_spec(args.data, args.representation or "roll")
    args.prepared = cli.prepare_training(APP, args)


def _summary(metrics: dict[str, Any]) -> str:
    where = f"on {metrics['pieces']} {metrics['split']} pieces"
    if metrics["representation"] == "roll":
        return (f"test NLL {metrics['nll_per_step']:.3f} per time step (sum over 88 keys), "
                f"frame accuracy {metrics['frame_accuracy']:.3f} {where}")  # fmt: skip
    return (f"test pitch accuracy {metrics['pitch_accuracy']:.3f}, step error "
            f"{metrics['step_mae_quarters']:.3f} and duration error "
            f"{metrics['duration_mae_quarters']:.3f} quarter notes {where}")  # fmt: skip


def _run_train(args: argparse.Namespace) -> None:
    from apps.music.train import train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print, warn=_warn)
    print(_summary(metrics))
    print(f"run dir: {run.path}")


def _run_main(args: argparse.Namespace) -> None:
    from apps.music.sample import generate_samples
    from apps.music.train import load_trained, train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print, warn=_warn)
    print(_summary(metrics))
    trained = load_trained(run)
    if config.representation == "roll":
        length, unit = MAIN_QUARTERS * config.steps_per_quarter, "time steps"
    else:
        length, unit = DEFAULT_EVENT_NOTES, "notes"
    (files,) = generate_samples(trained, length=length, temperature=1.0, seed=config.seed,
                                quiet=args.quiet)  # fmt: skip
    _print_sample(files, length, unit, config.tempo_bpm)
    print(f"run dir: {run.path}")


def _print_sample(files: Any, length: int, unit: str, tempo_bpm: float) -> None:
    seconds = files.quarters * 60.0 / tempo_bpm
    print(f"generated {length} {unit}: {files.notes} notes, {files.quarters:g} quarter notes "
          f"({seconds:.0f} s at {tempo_bpm:g} bpm)")  # fmt: skip
    print(f"  MIDI: {files.midi}")
    print(f"  piano roll: {files.png}")
    print(f"  WAV (NumPy additive synthesiser): {files.wav}")


# ---------------------------------------------------------------------- evaluate
def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    cli.add_data_argument(parser, "data to evaluate on (its test split)")
    cli.add_quiet_argument(parser)


def _check_evaluate(args: argparse.Namespace) -> None:
    from apps.music.data import check_data_spec
    from apps.music.train import read_run_config

    args.run = _open_run(args.run_dir)
    config, _ = read_run_config(args.run)
    if args.data is not None:
        check_data_spec(args.data, config.representation)


def _run_evaluate(args: argparse.Namespace) -> None:
    from apps.music.data import load_splits
    from apps.music.train import evaluate_trained, load_trained

    trained = load_trained(args.run)
    config = trained.config
    spec = args.data or config.data
    data = load_splits(spec, seed=config.seed, limit=config.limit,
                       representation=config.representation, warn=_warn)  # fmt: skip
    metrics = evaluate_trained(trained, data.test, data=spec, split="test")
    print(json.dumps(metrics, ensure_ascii=False))


# ---------------------------------------------------------------------- generate
def _add_generate(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    parser.add_argument(
        "--length",
        type=cli.positive_int,
        metavar="N",
        help=f"time steps (roll) or notes (events) to generate (default: "
        f"{MAIN_QUARTERS} quarter notes of steps for roll, "
        f"{DEFAULT_EVENT_NOTES} notes for events)",
    )
    parser.add_argument(
        "--temperature",
        type=cli.float_in(0.0, 10.0, low_open=True),
        default=1.0,
        metavar="T",
        help="sampling temperature in (0, 10]: below 1 safer, above 1 wilder",
    )
    parser.add_argument(
        "--primer",
        type=Path,
        metavar="FILE.mid",
        help="MIDI file to continue (its last seq_len steps are used)",
    )
    parser.add_argument(
        "--seed",
        type=cli.nonnegative_int,
        default=0,
        metavar="N",
        help="sampling seed (sample k uses seed + k)",
    )
    parser.add_argument(
        "--count", type=cli.positive_int, default=1, metavar="N", help="pieces to generate"
    )
    parser.add_argument(
        "--top-k",
        dest="top_k",
        type=cli.positive_int,
        metavar="K",
        help="events only: sample among the K most likely tokens",
    )
    cli.add_quiet_argument(parser)  # fmt: skip


def _check_generate(args: argparse.Namespace) -> None:
    from apps.music.midi_io import MidiError, read_midi_notes
    from apps.music.train import read_run_config

    args.run = _open_run(args.run_dir)
    config, _ = read_run_config(args.run)
    if args.length is not None and args.length > MAX_LENGTH:
        raise UsageError(f"--length: at most {MAX_LENGTH}, got {args.length}")
    if args.count > MAX_COUNT:
        raise UsageError(f"--count: at most {MAX_COUNT}, got {args.count}")
    if args.top_k is not None and config.representation != "events":
        raise UsageError("--top-k applies to events models only (a roll samples each key)")
    if args.length is None:
        args.length = (MAIN_QUARTERS * config.steps_per_quarter
                       if config.representation == "roll" else DEFAULT_EVENT_NOTES)  # fmt: skip
    args.primer_notes = None
    if args.primer is not None:
        if not args.primer.exists():
            raise UsageError(f"--primer: no such file: {args.primer}")
        try:
            args.primer_notes = read_midi_notes(args.primer)
        except MidiError as e:
            raise UsageError(f"--primer: {args.primer} {e}") from None


def _run_generate(args: argparse.Namespace) -> None:
    from apps.music.sample import generate_samples
    from apps.music.train import load_trained

    trained = load_trained(args.run)
    config = trained.config
    unit = "time steps" if config.representation == "roll" else "notes"
    results = generate_samples(trained, length=args.length, temperature=args.temperature,
                               seed=args.seed, count=args.count, primer=args.primer_notes,
                               top_k=args.top_k, warn=_warn, quiet=args.quiet)  # fmt: skip
    for files in results:
        if files.primer_steps and args.primer is not None:
            print(f"primer: {args.primer} ({files.primer_steps} steps), then:")
        _print_sample(files, args.length, unit, config.tempo_bpm)


# ---------------------------------------------------------------------- ensemble
def _add_ensemble(parser: argparse.ArgumentParser) -> None:
    cli.add_ensemble_arguments(
        parser,
        members_help="two or more trained piano-roll run dirs",
        data_help="data to evaluate on, its test split (default: the first member's)",
    )


def _check_ensemble(args: argparse.Namespace) -> None:
    from apps.music.data import check_data_spec
    from apps.music.train import read_run_config

    args.runs = cli.open_members(args.members, _open_roll_run)
    configs = [read_run_config(run)[0] for run in args.runs]
    for run, config in zip(args.runs, configs):
        if config.steps_per_quarter != configs[0].steps_per_quarter:
            raise UsageError(f"RUN: {run.path} has {config.steps_per_quarter} steps per quarter, "
                             f"{args.runs[0].path} {configs[0].steps_per_quarter}; members must "
                             "share the time grid")  # fmt: skip
    cli.check_new_folder(args.run_dir)
    if args.data is not None:
        check_data_spec(args.data, "roll")


def _run_ensemble(args: argparse.Namespace) -> None:
    from apps.music.data import load_splits
    from apps.music.ensemble import build_ensemble
    from apps.music.train import TrainedRun, evaluate_trained, load_trained

    members = [load_trained(run) for run in args.runs]
    first = members[0].config
    config = first.replace(
        cell="ensemble", units=sum(m.config.units for m in members),
        layers=max(m.config.layers for m in members), dropout=0.0, weight_noise=0.0,
        members=tuple(str(run.path.resolve()) for run in args.runs),
    )  # fmt: skip
    spec = args.data or first.data
    data = load_splits(spec, seed=first.seed, limit=first.limit, representation="roll",
                       warn=_warn)  # fmt: skip
    nll = []
    cli.hide_retracing_warnings()
    for member in members:
        metrics = evaluate_trained(member, data.test, data=spec, write=False)
        nll.append(round(metrics["nll_per_step"], 4))
        if not args.quiet:
            print(f"member {member.run.path}: {member.config.cell}, {metrics['params']:,} "
                  f"parameters, test NLL {metrics['nll_per_step']:.3f} per time step")  # fmt: skip
    run = RunDir.prepare(args.run_dir, APP_MODULE)
    run.write_json("vocab.json", members[0].run.read_json("vocab.json"))
    model = build_ensemble([m.model for m in members])
    with run.output("model.keras") as tmp:
        model.save(tmp)
    run.write_config(config.to_dict(), data_description=f"ensemble of {len(members)} runs")
    metrics = evaluate_trained(TrainedRun(run, config, model, None), data.test, data=spec)
    metrics["member_nll_per_step"] = nll
    atomic_write_json(run.metrics_json, metrics)
    if not args.quiet:
        print(f"ensemble of {len(members)}: {_summary(metrics)} (best member "
              f"{min(nll):.3f}); run dir {run.path}")  # fmt: skip
    print(json.dumps(metrics, ensure_ascii=False))


# -------------------------------------------------------------------------- verbs
MAIN = cli.Verb(
    "main",
    "train a GRU piano-roll model on builtin:chorales (--size small), evaluate it, write a "
    "generated MIDI, piano-roll PNG and WAV",
    _add_train,
    _run_main,
    _check_train,
)
VERBS = [
    cli.Verb("train", "train a model (resumes in an existing run dir), then evaluate it",
             _add_train, _run_train, _check_train),
    cli.Verb("evaluate", "test-split metrics of a run as one JSON line (also DIR/metrics.json)",
             _add_evaluate, _run_evaluate, _check_evaluate),
    cli.Verb("generate", "generate pieces: DIR/samples/*.mid, a piano-roll PNG and a WAV of each",
             _add_generate, _run_generate, _check_generate),
    cli.Verb("ensemble", "average the key probabilities of trained piano-roll runs into one "
             "model in a new run dir, and evaluate it", _add_ensemble, _run_ensemble,
             _check_ensemble),
]  # fmt: skip

"""The char LM's commands: main job, train, evaluate, generate, visualize, gradients.

Each command validates its input in a ``check`` step (pure Python, before TensorFlow loads),
then runs. Results go to stdout; notes and errors to stderr.
"""

from __future__ import annotations

import argparse
import codecs
import datetime as _dt
import json
import sys
from pathlib import Path

from apps.charlm.config import BUILTIN_DATA, CELL_CHOICES, CharLMConfig
from apps.common import cli
from apps.common.cells import parse_cell_name
from apps.common.errors import ConfigError, UsageError
from apps.common.rundir import RunDir, atomic_write_json, atomic_write_text
from apps.common.sources import read_text_strict

APP_MODULE = "apps.charlm"
EXCERPT = "samples/val_excerpt.txt"  # the start of the validation text, for visualize
EXCERPT_CHARS = 3000
SHOW_CHARS = 800  # characters drawn in the pictures (units are ranked on the whole text)
DEFAULT_GRADIENT_CELLS = ("vanilla", "lstm", "gru", "mut1")
DESCRIPTION = (
    "Character-level language model (Karpathy 2015) trained with truncated BPTT over contiguous\n"
    "streams; sampling from a one-step model, cell-activation pictures and measured gradient\n"
    "decay (vanilla vs LSTM, GRU, MUT). Cells: " + ", ".join(CELL_CHOICES) + "."
)


# ------------------------------------------------------------------- app wiring
def _check_config(config: CharLMConfig) -> None:
    parse_cell_name(config.cell, flag="--cell", allow_bidirectional=False)
    try:
        codecs.lookup(config.encoding)
    except LookupError:
        raise ConfigError(
            f"--encoding: unknown text encoding {config.encoding!r} (e.g. utf-8, latin-1)"
        ) from None


def _config_flags(parser: argparse.ArgumentParser) -> None:
    shown = cli.default_shown(CharLMConfig.small())

    add = parser.add_argument
    add(
        "--cell",
        "--model",
        dest="cell",
        metavar="NAME",
        help=f"recurrent cell: {', '.join(CELL_CHOICES)} " + shown("cell"),
    )
    add(
        "--layers",
        type=cli.positive_int,
        metavar="N",
        help="stacked recurrent layers " + shown("layers"),
    )
    add(
        "--units",
        type=cli.positive_int,
        metavar="N",
        help="hidden size per layer " + shown("units"),
    )
    add(
        "--embedding-dim",
        dest="embedding_dim",
        type=cli.positive_int,
        metavar="N",
        help="character-embedding width (MUT1/MUT2 use --units) " + shown("embedding_dim"),
    )
    add(
        "--bptt",
        type=cli.positive_int,
        metavar="N",
        help="truncated-BPTT window: characters per step of every stream " + shown("bptt"),
    )
    add(
        "--clipnorm",
        type=cli.float_in(0.0, 1e6),
        metavar="X",
        help="clip the global gradient norm to X (0: no clipping) " + shown("clipnorm"),
    )
    add(
        "--learning-rate",
        dest="learning_rate",
        type=cli.float_in(0.0, 10.0, low_open=True),
        metavar="LR",
        help="Adam learning rate " + shown("learning_rate"),
    )
    add(
        "--dropout",
        type=cli.float_in(0.0, 0.99),
        metavar="P",
        help="dropout between layers " + shown("dropout"),
    )
    add(
        "--max-chars",
        dest="max_chars",
        type=cli.int_at_least(100),
        metavar="N",
        help="use at most N characters of the corpus " + shown("max_chars"),
    )
    add(
        "--vocab-size",
        dest="vocab_size",
        type=cli.int_at_least(2),
        metavar="N",
        help="most distinct characters kept, unknown included " + shown("vocab_size"),
    )
    add(
        "--val-fraction",
        dest="val_fraction",
        type=cli.float_in(0.0, 0.9, low_open=True),
        metavar="F",
        help="share of the corpus held out for validation " + shown("val_fraction"),
    )
    add("--encoding", metavar="NAME",
        help="encoding of a text-file --data (utf-8 is read strictly) " + shown("encoding"))  # fmt: skip


APP = cli.AppSpec(
    module=APP_MODULE,
    description=DESCRIPTION,
    config_cls=CharLMConfig,
    builtin_data=BUILTIN_DATA,
    default_size="small",
    add_config_flags=_config_flags,
    check_config=_check_config,
)


def _log(quiet: bool):
    return None if quiet else print


def _open_trained(path: Path) -> RunDir:
    run = RunDir.open(path, APP_MODULE)
    run.require_model()
    if not run.vocab_json.is_file():
        raise UsageError(f"--run-dir: {path} has no vocab.json (was training started?)")
    return run


# ------------------------------------------------------------------------- train
def _add_train(parser: argparse.ArgumentParser) -> None:
    cli.add_train_arguments(parser, APP)


def _check_train(args: argparse.Namespace) -> None:
    args.prepared = cli.prepare_training(APP, args)


def _train(args: argparse.Namespace) -> tuple:
    from apps.charlm.train import train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print)
    _write_excerpt(config, run)
    return config, run, metrics


def _write_excerpt(config: CharLMConfig, run: RunDir) -> None:
    from apps.charlm.data import load_corpus

    path = run.path / EXCERPT
    if not path.is_file():
        corpus = load_corpus(config.data, encoding=config.encoding, max_chars=config.max_chars,
                             val_fraction=config.val_fraction)  # fmt: skip
        atomic_write_text(path, corpus.val[:EXCERPT_CHARS])


def _print_summary(metrics: dict, run: RunDir) -> None:
    print(f"validation: {metrics['val_nats_per_char']:.4f} nats/char = "
          f"{metrics['val_bits_per_char']:.4f} bits/char (perplexity {metrics['val_perplexity']:.2f}) "
          f"on {metrics['val_chars']:,} characters")  # fmt: skip
    print(f"run dir: {run.path}")


def _run_train(args: argparse.Namespace) -> None:
    _, run, metrics = _train(args)
    _print_summary(metrics, run)


def _run_main(args: argparse.Namespace) -> None:
    from apps.charlm.sample import Generator, generate
    from apps.charlm.train import load_trained
    from apps.charlm.visualize import visualize

    config, run, metrics = _train(args)
    trained = load_trained(run)
    gen = Generator.from_model(trained.model, trained.vocab)
    prime = "def " if config.data == "builtin:pysource" else "\n"
    print(f"sample (temperature 0.8, prime {prime!r}):")
    print("-" * 60)
    text = prime + generate(gen, prime, 400, temperature=0.8, seed=config.seed)
    print(text)
    print("-" * 60)
    atomic_write_text(run.samples / "main_sample.txt", text)
    excerpt = (run.path / EXCERPT).read_text(encoding="utf-8")
    result = visualize(gen, excerpt, run.plots, find="quotes", top=2, show=SHOW_CHARS)
    atomic_write_json(run.plots / "cells_quotes.json", result)
    best = result["units"][0]
    print(f"cell activations: unit {best['unit']} is the most correlated with being inside quotes "
          f"(r = {best['r']:+.2f}): {result['png']} and .html")  # fmt: skip
    _print_summary(metrics, run)


# ---------------------------------------------------------------------- evaluate
def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    cli.add_data_argument(parser, "data to evaluate on (its validation part)")
    cli.add_quiet_argument(parser)


def _check_evaluate(args: argparse.Namespace) -> None:
    args.run = _open_trained(args.run_dir)
    if args.data is not None:
        cli.check_source(APP, args.data)


def _run_evaluate(args: argparse.Namespace) -> None:
    from apps.charlm.data import load_corpus
    from apps.charlm.train import evaluate_trained, load_trained

    trained = load_trained(args.run)
    cfg = trained.config
    data = args.data or cfg.data
    corpus = load_corpus(data, encoding=cfg.encoding, max_chars=cfg.max_chars,
                         val_fraction=cfg.val_fraction)  # fmt: skip
    metrics = evaluate_trained(trained, corpus.val, data=data)
    print(json.dumps(metrics, ensure_ascii=False))


# ---------------------------------------------------------------------- generate
def _add_generate(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    parser.add_argument("--prime", metavar="TEXT", help="text to start from (default: a newline)")
    parser.add_argument(
        "--length", type=cli.positive_int, default=500, metavar="N", help="characters to generate"
    )
    parser.add_argument(
        "--temperature",
        type=cli.float_in(0.0, 100.0, low_open=True),
        default=1.0,
        metavar="T",
        help="sampling temperature, > 0 (lower: more conservative)",
    )
    parser.add_argument(
        "--top-k",
        dest="top_k",
        type=cli.positive_int,
        metavar="K",
        help="sample only among the K most likely characters (default: all)",
    )
    parser.add_argument(
        "--seed",
        type=cli.nonnegative_int,
        metavar="N",
        help="seed of the sampler (default: a fresh one each run)",
    )
    cli.add_quiet_argument(parser)  # fmt: skip


def _check_generate(args: argparse.Namespace) -> None:
    from apps.charlm.data import UNKNOWN_CHAR
    from apps.charlm.sample import default_prime
    from apps.charlm.train import load_vocab

    args.run = _open_trained(args.run_dir)
    vocab = load_vocab(args.run)
    if args.prime is None:
        args.prime = default_prime(vocab)
    elif args.prime == "":
        raise UsageError(
            "--prime: empty; give some text, or leave --prime out to start at a newline"
        )
    unseen = vocab.unknown_chars(args.prime)
    if unseen:
        shown = ", ".join(repr(c) for c in unseen[:10]) + (" …" if len(unseen) > 10 else "")
        print(f"note: --prime has characters the model never saw ({shown}); they are read as the "
              f"unknown character {UNKNOWN_CHAR}", file=sys.stderr)  # fmt: skip


def _run_generate(args: argparse.Namespace) -> None:
    from apps.charlm.sample import Generator, generate
    from apps.charlm.train import load_trained

    trained = load_trained(args.run)
    gen = Generator.from_model(trained.model, trained.vocab)
    sys.stdout.write(args.prime)
    sys.stdout.flush()

    def stream(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    out = generate(gen, args.prime, args.length, temperature=args.temperature, top_k=args.top_k,
                   seed=args.seed, on_text=stream)  # fmt: skip
    sys.stdout.write("\n")
    path = args.run.samples / f"generate-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}.txt"
    atomic_write_text(path, args.prime + out)
    if not args.quiet:
        print(f"saved: {path}", file=sys.stderr)


# --------------------------------------------------------------------- visualize
def _add_visualize(parser: argparse.ArgumentParser) -> None:
    from apps.charlm.visualize import PROPERTIES, STATES

    cli.add_run_dir_argument(parser)
    parser.add_argument(
        "--text",
        metavar="TEXT",
        help="text to read (default: the start of the "
        "validation text, kept in DIR/" + EXCERPT + ")",
    )
    parser.add_argument("--file", type=Path, metavar="FILE", help="UTF-8 text file to read instead")
    parser.add_argument(
        "--find",
        choices=PROPERTIES,
        help="rank units by |correlation| with this property of the text and show "
        "the best (default: quotes, unless --unit is given)",
    )
    parser.add_argument(
        "--unit",
        dest="units",
        type=cli.nonnegative_int,
        action="append",
        default=None,
        metavar="N",
        help="show unit N (repeatable)",
    )
    parser.add_argument(
        "--layer",
        type=cli.positive_int,
        default=1,
        metavar="N",
        help="recurrent layer (1 = nearest the input)",
    )
    parser.add_argument(
        "--state",
        choices=STATES,
        default="output",
        help="output: the layer's h; cell: the LSTM cell state c, as tanh(c)",
    )
    parser.add_argument(
        "--top", type=cli.positive_int, default=3, metavar="K", help="units shown when ranking"
    )
    parser.add_argument(
        "--max-chars",
        dest="max_chars",
        type=cli.positive_int,
        default=EXCERPT_CHARS,
        metavar="N",
        help="read at most N characters of the text (units are ranked on all of them)",
    )
    parser.add_argument(
        "--show-chars",
        dest="show_chars",
        type=cli.positive_int,
        default=SHOW_CHARS,
        metavar="N",
        help="draw the first N characters in the HTML and PNG",
    )
    cli.add_quiet_argument(parser)  # fmt: skip


def _check_visualize(args: argparse.Namespace) -> None:
    if args.text is not None and args.file is not None:
        raise UsageError("give --text or --file, not both")
    args.run = _open_trained(args.run_dir)
    config = CharLMConfig.from_dict(args.run.read_config(), source=str(args.run.config_json))
    if args.layer > config.layers:
        raise UsageError(
            f"--layer: the model has {config.layers} layer(s); give 1..{config.layers}"
        )
    if args.state == "cell" and parse_cell_name(config.cell).kind != "lstm":
        raise UsageError(
            f"--state cell needs an LSTM; this model's cell is {config.cell} (use output)"
        )
    if args.units and any(u >= config.units for u in args.units):
        raise UsageError(f"--unit: the layer has {config.units} units; give 0..{config.units - 1}")
    if args.text is not None:
        text = args.text
    elif args.file is not None:
        text = read_text_strict(args.file, flag="--file")
    else:
        excerpt = args.run.path / EXCERPT
        if not excerpt.is_file():
            raise UsageError(f"--run-dir: {args.run.path} has no {EXCERPT}; give --text or --file")
        text = excerpt.read_text(encoding="utf-8")
    text = text[: args.max_chars]
    if not text.strip():
        raise UsageError("the text to visualise is empty; give --text or --file with some text")
    args.vis_text = text
    if args.find is None and not args.units:
        args.find = "quotes"


def _run_visualize(args: argparse.Namespace) -> None:
    from apps.charlm.sample import Generator
    from apps.charlm.train import load_trained
    from apps.charlm.visualize import visualize

    trained = load_trained(args.run)
    unseen = trained.vocab.unknown_chars(args.vis_text)
    if unseen:
        print(f"note: {len(unseen)} character(s) of the text are unknown to the model and read as "
              "the unknown character", file=sys.stderr)  # fmt: skip
    gen = Generator.from_model(trained.model, trained.vocab)
    result = visualize(gen, args.vis_text, args.run.plots, find=args.find, units=args.units or (),
                       layer=args.layer, state=args.state, top=args.top,
                       show=args.show_chars)  # fmt: skip
    stem = Path(result["png"]).stem
    atomic_write_json(args.run.plots / f"{stem}.json", result)
    if args.find:
        print(f"units most correlated with {args.find} (layer {args.layer}, {args.state}):")
        for row in result["ranking"][: max(args.top, 5)]:
            print(f"  unit {row['unit']:>4}  r = {row['r']:+.3f}")
    print(f"html: {result['html']}")
    print(f"png:  {result['png']}")


# --------------------------------------------------------------------- gradients
def _add_gradients(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    parser.add_argument(
        "--cells",
        default=",".join(DEFAULT_GRADIENT_CELLS),
        metavar="LIST",
        help="cells to compare, each trained with the same budget on the run's data",
    )
    parser.add_argument(
        "--steps",
        type=cli.nonnegative_int,
        default=300,
        metavar="N",
        help="training windows per compared cell (0: initialisation only)",
    )
    parser.add_argument(
        "--horizon",
        type=cli.positive_int,
        default=60,
        metavar="K",
        help="largest distance k measured",
    )
    parser.add_argument(
        "--units",
        type=cli.positive_int,
        metavar="N",
        help="hidden size of the compared models (default: the run's)",
    )
    parser.add_argument(
        "--probes",
        type=cli.positive_int,
        default=32,
        metavar="N",
        help="validation windows averaged per curve",
    )
    cli.add_quiet_argument(parser)  # fmt: skip


def _check_gradients(args: argparse.Namespace) -> None:
    args.run = _open_trained(args.run_dir)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    if not cells:
        raise UsageError("--cells: give at least one cell, e.g. --cells vanilla,lstm")
    for cell in cells:
        parse_cell_name(cell, flag="--cells", allow_bidirectional=False)
    args.cell_list = cells


def _run_gradients(args: argparse.Namespace) -> None:
    from apps.charlm import gradients as G
    from apps.charlm.data import check_enough, load_corpus
    from apps.charlm.train import load_trained

    trained = load_trained(args.run)
    cfg = trained.config
    corpus = load_corpus(cfg.data, encoding=cfg.encoding, max_chars=cfg.max_chars,
                         val_fraction=cfg.val_fraction)  # fmt: skip
    train_ids, val_ids = trained.vocab.encode(corpus.train), trained.vocab.encode(corpus.val)
    if len(val_ids) < args.horizon + 2:
        raise UsageError(f"--horizon: the validation text has only {len(val_ids)} characters")
    if args.steps:
        check_enough(len(train_ids), cfg.batch_size, cfg.bptt, "training")
    units = args.units or cfg.units
    print(f"own model: {cfg.layers} x {cfg.cell} ({cfg.units} units), trained; compared cells: "
          f"{', '.join(args.cell_list)} ({units} units, {args.steps} windows of {cfg.bptt} x "
          f"{cfg.batch_size} each, seed {cfg.seed})")  # fmt: skip
    windows = G.probe_windows(val_ids, args.probes, args.horizon + 1)
    own = G.gradient_norms(trained.model, windows)
    own_result = {"cell": f"{cfg.cell} (this run)", "trained": own.tolist(),
                  "decay_trained": G.decay_rate(own), "ratio_trained": float(own[-1] / own[0]),
                  "sigma_max_trained": G.largest_singular_values(trained.model).get("rnn_1")}  # fmt: skip

    def report(cell: str, result: dict) -> None:
        print("  " + G.summary_line(result))

    results = G.compare_cells(args.cell_list, train_ids, val_ids, trained.vocab.size, units=units,
                              embedding_dim=cfg.embedding_dim, batch_size=cfg.batch_size,
                              bptt=cfg.bptt, steps=args.steps, horizon=args.horizon,
                              probes=args.probes, learning_rate=cfg.learning_rate,
                              clipnorm=cfg.clipping, seed=cfg.seed, on_cell=report)  # fmt: skip
    curves = [(f"this run: {own_result['cell'].split(' ')[0]}", own, "own")]
    for r in results:
        if "trained" in r:
            curves.append((f"{r['cell']} (trained {args.steps} steps)", r["trained"], "-"))
        curves.append((f"{r['cell']} (initialisation)", r["init"], "--"))
    png = G.plot_gradients(curves, args.run.plots / "gradients.png",
                           title=f"‖∂loss_t/∂x_(t−k)‖ on {cfg.data} validation text")  # fmt: skip
    print(f"  {own_result['cell']:<10} trained: {own_result['decay_trained']:+.3f} dec/step "
          f"(ratio {own_result['ratio_trained']:.2e})")  # fmt: skip
    sig = {r["cell"]: (r.get("sigma_max_init"), r.get("sigma_max_trained")) for r in results
           if parse_cell_name(r["cell"]).kind == "vanilla"}  # fmt: skip
    for cell, (a, b) in sig.items():
        after = f" -> {b:.3f} after training" if b is not None else ""
        print(f"largest singular value of the {cell} cell's W_hh: {a:.3f} at initialisation{after} "
              "(> 1: gradients may explode, < 1: they vanish)")  # fmt: skip
    atomic_write_json(args.run.path / "gradients.json",
                      {"horizon": args.horizon, "steps": args.steps, "units": units,
                       "own": own_result, "cells": results})  # fmt: skip
    print(f"plot: {png}")
    print(f"data: {args.run.path / 'gradients.json'}")


# -------------------------------------------------------------------------- verbs
MAIN = cli.Verb(
    "main",
    "train an LSTM on builtin:pysource (--size small), evaluate it, print a sample and write "
    "one cell-activation picture",
    _add_train,
    _run_main,
    _check_train,
)
VERBS = [
    cli.Verb("train", "train a model (resumes in an existing run dir), then evaluate it",
             _add_train, _run_train, _check_train),
    cli.Verb("evaluate", "validation nats and bits per character as one JSON line "
             "(also DIR/metrics.json)", _add_evaluate, _run_evaluate, _check_evaluate),
    cli.Verb("generate", "sample text after --prime, streamed as it comes (one-step model)",
             _add_generate, _run_generate, _check_generate),
    cli.Verb("visualize", "colour a text by single units' activations (HTML + PNG); --find ranks "
             "units by correlation with quotes / line position / bracket depth",
             _add_visualize, _run_visualize, _check_visualize),
    cli.Verb("gradients", "measure ‖∂loss_t/∂x_(t−k)‖ against k for vanilla, LSTM, GRU, MUT "
             "(log-scale plot) and σ_max of the vanilla W_hh", _add_gradients, _run_gradients,
             _check_gradients),
]  # fmt: skip

"""The sentiment app's commands: main job, train, evaluate, predict, compare, probe.

Each command validates its input in a ``check`` step (pure Python, before TensorFlow loads),
then runs. Results go to stdout; notes and errors to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from apps.common import cli
from apps.common.cells import parse_cell_name
from apps.common.errors import UsageError
from apps.common.rundir import RunDir, atomic_write_json, atomic_write_text, default_run_dir
from apps.common.sources import decode_utf8_strict, read_text_strict
from apps.sentiment.config import BUILTIN_DATA, MODEL_CHOICES, POOLINGS, SentimentConfig

APP_MODULE = "apps.sentiment"
MAX_TEXT_BYTES = 1_000_000
DEFAULT_COMPARE = ("bow", "window", "vanilla", "lstm", "bilstm", "gru", "mut1")
EXAMPLES = (
    "I love my new phone, the camera is amazing!",
    "The update is out today.",
    "Worst customer service ever, I want my money back.",
)
DESCRIPTION = (
    "Sentiment analysis of short texts with recurrent networks (a many-to-one RNN):\n"
    "bag of words, fixed window, vanilla RNN, LSTM, BiLSTM, GRU, MUT1-3 and searched cells."
)


# ------------------------------------------------------------------- app wiring
def check_model_name(name: str) -> None:
    """``bow``, ``window`` or a recurrent cell name (``bi`` variants included)."""
    if name.strip().lower() in ("bow", "window"):
        return
    try:
        parse_cell_name(name, flag="--model")
    except UsageError as e:
        if "unknown cell" in str(e):
            raise UsageError(
                f"--model: unknown model {name!r} (choose from {', '.join(MODEL_CHOICES)}, or "
                "bi+cell such as bigru)"
            ) from None
        raise


def _check_config(config: SentimentConfig) -> None:
    check_model_name(config.model)


def _config_flags(parser: argparse.ArgumentParser) -> None:
    shown = cli.default_shown(SentimentConfig.small(), none="all")

    parser.add_argument(
        "--limit",
        type=cli.int_at_least(10),
        metavar="N",
        help="use at most N examples per split " + shown("limit"),
    )
    parser.add_argument(
        "--units",
        type=cli.positive_int,
        metavar="N",
        help="hidden size per direction " + shown("units"),
    )
    parser.add_argument(
        "--embedding-dim",
        dest="embedding_dim",
        type=cli.positive_int,
        metavar="N",
        help="word-vector width " + shown("embedding_dim"),
    )
    parser.add_argument(
        "--vocab-size",
        dest="vocab_size",
        type=cli.int_at_least(3),
        metavar="N",
        help="dictionary size incl. padding and [UNK] " + shown("vocab_size"),
    )
    parser.add_argument(
        "--max-length",
        dest="max_length",
        type=cli.positive_int,
        metavar="N",
        help="tokens kept per text " + shown("max_length"),
    )
    parser.add_argument(
        "--pooling",
        choices=POOLINGS,
        help="recurrent models: final state (last) or max over the real steps (max) "
        + shown("pooling"),
    )
    parser.add_argument(
        "--embedding-dropout",
        dest="embedding_dropout",
        metavar="RATE",
        type=cli.float_in(0.0, 1.0),
        help="recurrent models: rate of word vectors dropped in training "
        + shown("embedding_dropout"),
    )
    parser.add_argument(
        "--learning-rate",
        dest="learning_rate",
        metavar="LR",
        type=cli.float_in(0.0, 10.0, low_open=True),
        help="Adam learning rate " + shown("learning_rate"),
    )


APP = cli.AppSpec(
    module=APP_MODULE,
    description=DESCRIPTION,
    config_cls=SentimentConfig,
    builtin_data=BUILTIN_DATA,
    default_size="small",
    add_config_flags=_config_flags,
    check_config=_check_config,
)


def _kind(path: Path) -> str | None:
    """``"compare"`` for a compare run dir, ``"train"`` for a train run, None otherwise."""
    return RunDir.kind_of(path, APP_MODULE)


def _open_train_run(path: Path, *, need_model: bool = True) -> RunDir:
    return RunDir.open_model_run(path, APP_MODULE, group_kind="compare", example="bilstm",
                                 need_model=need_model)  # fmt: skip


def _log(quiet: bool):
    return None if quiet else print


# ------------------------------------------------------------------------- train
def _check_train(args: argparse.Namespace) -> None:
    if args.run_dir is not None and _kind(args.run_dir) == "compare":
        raise UsageError(f"--run-dir: {args.run_dir} is a compare run; train needs its own run dir")
    args.prepared = cli.prepare_training(APP, args)


def _run_train(args: argparse.Namespace) -> None:
    from apps.sentiment.train import train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print)
    _print_summary(metrics, run)


def _print_summary(metrics: dict[str, Any], run: RunDir) -> None:
    print(
        f"test accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f} "
        f"on {metrics['examples']} {metrics['split']} examples"
    )
    print(f"run dir: {run.path}")


def _run_main(args: argparse.Namespace) -> None:
    from apps.sentiment.train import load_trained, predict_proba, train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print)
    trained = load_trained(run)
    print("examples:")
    for text, probs in zip(EXAMPLES, predict_proba(trained, list(EXAMPLES))):
        print("  " + _format_prediction(text, probs, trained.class_names))
    _print_summary(metrics, run)


# ---------------------------------------------------------------------- evaluate
def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    cli.add_data_argument(parser, "data to evaluate on (its test split)")
    cli.add_quiet_argument(parser)


def _check_evaluate(args: argparse.Namespace) -> None:
    args.run = _open_train_run(args.run_dir)
    if args.data is not None:
        cli.check_source(APP, args.data)


def _run_evaluate(args: argparse.Namespace) -> None:
    from apps.sentiment.data import load_splits
    from apps.sentiment.train import check_labels, evaluate_trained, load_trained

    trained = load_trained(args.run)
    data_spec = args.data or trained.config.data
    data = load_splits(data_spec, seed=trained.config.seed, limit=trained.config.limit)
    check_labels(data.class_names, trained.class_names, data_spec)
    metrics = evaluate_trained(trained, data.test, data=data_spec, split="test", quiet=args.quiet)
    print(json.dumps(metrics, ensure_ascii=False))


# ----------------------------------------------------------------------- predict
def _add_predict(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    parser.add_argument(
        "texts",
        nargs="*",
        metavar="TEXT",
        help="texts to classify (default: --file, else lines on stdin)",
    )
    parser.add_argument(
        "--file",
        type=Path,
        metavar="FILE",
        help="UTF-8 text file, one text per line (blank lines skipped)",
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per text: text, label, probabilities"
    )
    cli.add_quiet_argument(parser)


def _limit_size(texts: list[str], origin: str) -> list[str]:
    out = []
    for n, text in enumerate(texts, 1):
        data = text.encode("utf-8")
        if len(data) > MAX_TEXT_BYTES:
            print(
                f"note: {origin} {n} is {len(data):,} bytes; only its first 1 MB is used",
                file=sys.stderr,
            )
            text = data[:MAX_TEXT_BYTES].decode("utf-8", errors="ignore")
        out.append(text)
    return out


def _check_predict(args: argparse.Namespace) -> None:
    if args.texts and args.file is not None:
        raise UsageError("give texts as arguments or --file FILE, not both")
    args.run = _open_train_run(args.run_dir)
    if args.texts:
        for n, text in enumerate(args.texts, 1):
            if not text.strip():
                raise UsageError(f"text {n} is empty; give words to classify")
        args.inputs = _limit_size(list(args.texts), "text")
        return
    if args.file is not None:
        lines = read_text_strict(args.file, flag="--file").splitlines()
        origin = f"--file {args.file}: text"
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError(
                "no text to classify: give TEXT arguments, --file FILE or lines on stdin"
            )
        lines = decode_utf8_strict(sys.stdin.buffer.read(), "stdin").splitlines()
        origin = "stdin: text"
    texts = [line for line in lines if line.strip()]
    if not texts:
        where = f"--file: {args.file}" if args.file is not None else "stdin"
        raise UsageError(f"{where} has no text to classify (only blank lines)")
    args.inputs = _limit_size(texts, origin)


def _format_prediction(text: str, probs: Any, class_names: list[str]) -> str:
    label = class_names[int(probs.argmax())]
    shown = " ".join(f"{name}={p:.3f}" for name, p in zip(class_names, probs))
    short = " ".join(text.split())
    short = short if len(short) <= 70 else short[:69] + "…"
    return f"{label:<9} {shown}  {short}"


def _run_predict(args: argparse.Namespace) -> None:
    from apps.sentiment.train import load_trained, predict_proba

    trained = load_trained(args.run)
    for n, text in enumerate(args.inputs, 1):
        if not trained.tokenizer.tokenize(text):
            raise UsageError(f"text {n} has no words (only invisible characters); give words")
    probs = predict_proba(trained, args.inputs, quiet=args.quiet)
    for text, row in zip(args.inputs, probs):
        if args.json:
            record = {
                "text": text if len(text) <= 1000 else text[:1000] + "…",
                "label": trained.class_names[int(row.argmax())],
                "probabilities": {c: round(float(p), 6) for c, p in zip(trained.class_names, row)},
            }
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(_format_prediction(text, row, trained.class_names))


# ----------------------------------------------------------------------- compare
def _add_compare(parser: argparse.ArgumentParser) -> None:
    cli.add_train_arguments(parser, APP, exclude=("model",))
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_COMPARE),
        metavar="LIST",
        help="comma-separated models, all trained with the same data and budget",
    )


def _safe_name(model: str) -> str:
    if model.lower().startswith(("genotype:", "bigenotype:")):
        prefix, path = model.split(":", 1)
        model = f"{prefix}-{Path(path).stem}"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in model)


def _check_compare(args: argparse.Namespace) -> None:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise UsageError("--models: give at least one model, e.g. --models lstm,gru")
    for name in models:
        check_model_name(name)
    if len({_safe_name(m) for m in models}) != len(models):
        raise UsageError(f"--models: a model is listed twice: {args.models}")
    config = cli.config_from_args(APP, args)
    path = args.run_dir
    if path is None:
        path = default_run_dir(APP_MODULE)
        path = path.with_name("compare-" + path.name)
    kind = _kind(path) if Path(path).is_dir() else None
    if kind == "train":
        raise UsageError(f"--run-dir: {path} is a train run, not a compare run; give a new folder")
    if kind == "compare":
        run = RunDir.open(path, APP_MODULE)
        saved = SentimentConfig.from_dict(run.read_config(), source=str(run.config_json))
        changed = {
            k: v for k, v in saved.differences(config).items() if k not in ("epochs", "model")
        }
        if changed:
            what = ", ".join(f"{k}={a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise UsageError(f"--run-dir: {path} compared models with another config ({what})")
    else:
        run = RunDir.prepare(path, APP_MODULE)
    run.write_config(config.to_dict(), kind="compare", models=models)
    args.prepared = (config, run, models)


def _run_compare(args: argparse.Namespace) -> None:
    from apps.common import plots
    from apps.sentiment.train import train_and_evaluate

    config, run, models = args.prepared
    rows = []
    for name in models:
        print(f"== {name}")
        sub = RunDir.prepare(run.path / "models" / _safe_name(name), APP_MODULE)
        started = time.monotonic()
        metrics = train_and_evaluate(
            config.replace(model=name), sub, quiet=args.quiet, log=_log(args.quiet)
        )
        seconds = metrics.get("train_seconds", time.monotonic() - started)
        rows.append(
            {
                "model": name,
                "params": metrics["params"],
                "dictionary_size": metrics["dictionary_size"],
                "hidden_size": metrics["hidden_size"],
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "train_seconds": round(seconds, 1),
                "run_dir": str(sub.path),
            }
        )
        print(f"   accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    report = _compare_report(config, rows)
    atomic_write_text(run.path / "report.md", report)
    atomic_write_json(run.path / "compare.json", {"config": config.to_dict(), "rows": rows})
    plots.bar_chart(
        [r["model"] for r in rows],
        {"accuracy": [r["accuracy"] for r in rows], "macro-F1": [r["macro_f1"] for r in rows]},
        run.plots / "compare.png",
        title=f"Sentiment models on {config.data}",
        ylabel="test score",
    )
    print(report)
    print(f"report: {run.path / 'report.md'}")
    print(f"run dir: {run.path}")


def _compare_report(config: SentimentConfig, rows: list[dict[str, Any]]) -> str:
    lines = [
        f"# Sentiment models on {config.data}",
        "",
        f"Same data and budget for every model: {config.epochs} epochs, batch size "
        f"{config.batch_size}, learning rate {config.learning_rate}, "
        f"embedding {config.embedding_dim}, "
        f"max length {config.max_length}, seed {config.seed}"
        + (f", at most {config.limit} examples per split" if config.limit else "")
        + ". Accuracy and macro-F1 on the test split.",
        "",
        (
            "| Model | Parameters | Dictionary size | Hidden size | Accuracy | Macro-F1 "
            "| Training time (s) |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['dictionary_size']:,} | "
            f"{r['hidden_size']} | {100 * r['accuracy']:.2f}% | {r['macro_f1']:.3f} | "
            f"{r['train_seconds']:.1f} |"
        )
    lines += ["", "![accuracy per model](plots/compare.png)", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------- probe
def _add_probe(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    parser.add_argument(
        "--pairs",
        type=Path,
        metavar="FILE.json",
        help='word-order minimal pairs {"pairs": [{"positive", "negative"}]} '
        "(default: the app's probe_pairs.json)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON line")
    cli.add_quiet_argument(parser)


def _check_probe(args: argparse.Namespace) -> None:
    from apps.sentiment.train import load_probe_pairs

    run = RunDir.open(args.run_dir, APP_MODULE)
    if _kind(run.path) == "compare":
        names = [_safe_name(m) for m in run.read_meta().get("models", [])]
        targets = [
            RunDir(run.path / "models" / name, APP_MODULE)
            for name in names
            if (run.path / "models" / name / "model.keras").is_file()
        ]
        if not targets:
            raise UsageError(f"--run-dir: {run.path} has no trained models yet")
    else:
        run.require_model()
        targets = [run]
    args.run, args.targets = run, targets
    args.pairs_list = load_probe_pairs(args.pairs)


def _run_probe(args: argparse.Namespace) -> None:
    from apps.sentiment.train import load_trained, probe_trained

    results = []
    for target in args.targets:
        result = probe_trained(load_trained(target), args.pairs_list)
        results.append(result)
        if not args.json:
            note = ""
            if result["model"] == "bow":
                note = "  (bag of words: both texts of every pair get identical probabilities)"
            print(
                f"{result['model']:<10} {result['correct']:>2}/{result['pairs']} pairs ordered "
                f"correctly{note}"
            )
    atomic_write_json(args.run.path / "probe.json", {"results": results})
    if args.json:
        print(
            json.dumps(
                [{k: r[k] for k in ("model", "correct", "pairs", "max_abs_diff")} for r in results]
            )
        )


# -------------------------------------------------------------------------- verbs
def _add_train(parser: argparse.ArgumentParser) -> None:
    cli.add_train_arguments(parser, APP)


MAIN = cli.Verb(
    "main",
    "train a BiLSTM on builtin:tweets (--size small), evaluate it, show a few predictions",
    _add_train,
    _run_main,
    _check_train,
)
VERBS = [
    cli.Verb(
        "train",
        "train a model (resumes in an existing run dir), then evaluate it",
        _add_train,
        _run_train,
        _check_train,
    ),
    cli.Verb(
        "evaluate",
        "test-split metrics of a run as one JSON line (also DIR/metrics.json)",
        _add_evaluate,
        _run_evaluate,
        _check_evaluate,
    ),
    cli.Verb(
        "predict",
        "classify texts given as arguments, in --file, or on stdin",
        _add_predict,
        _run_predict,
        _check_predict,
    ),
    cli.Verb(
        "compare",
        "train several models with one budget; DIR/report.md, plots/compare.png",
        _add_compare,
        _run_compare,
        _check_compare,
    ),
    cli.Verb(
        "probe",
        "word-order minimal pairs: how many each model orders correctly",
        _add_probe,
        _run_probe,
        _check_probe,
    ),
]

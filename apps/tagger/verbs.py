"""The tagger app's commands: main job, train, evaluate, tag, probe.

Each command validates its input in a ``check`` step (pure Python, before TensorFlow loads),
then runs. Results go to stdout; notes and errors to stderr.
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
from apps.common.rundir import RunDir, atomic_write_json, default_run_dir
from apps.common.sources import decode_utf8_strict, read_text_strict
from apps.tagger.config import MODEL_CHOICES, TaggerConfig
from apps.tagger.data import BUILTIN_DATA, TAG_SETS

APP_MODULE = "apps.tagger"
MAX_TOKENS = 100_000  # tokens per sentence given to `tag`
PROBE_MODELS = ("lstm", "bilstm")
EXAMPLES = (
    'He said, "Teddy bears are on sale!"',
    'He said, "Teddy Roosevelt was a great President!"',
    "Breaking news: Georgia Institute of Technology hired Rose Kennedy.",
    "Breaking news: Georgia has cold winters.",
)
DESCRIPTION = (
    "Many-to-many sequence labelling (named entities, part of speech) with a bidirectional\n"
    "LSTM over word embeddings and a character encoder; lstm / bigru / mut1-3 / genotype cells.\n\n"
    "Data (--data): builtin:teddy = GENERATED sentences (project templates + US Census names\n"
    "from 'names' + country/region names from 'pycountry') where the words after a name decide\n"
    "its tag; a CoNLL 'token<TAB|SPACE>tag' file or folder (WNUT-17, Wikigold; IOB1, IOB2 and\n"
    "BIOES read, scored as IOB2); a CoNLL-U file or folder (Universal Dependencies, --tags\n"
    "upos|xpos); tfds:conll2003 (needs a download)."
)


# ------------------------------------------------------------------- app wiring
def check_model_name(name: str) -> None:
    """A recurrent cell name (``bi`` variants included)."""
    try:
        parse_cell_name(name, flag="--model")
    except UsageError as e:
        if "unknown cell" in str(e):
            raise UsageError(
                f"--model: unknown model {name!r} (choose from {', '.join(MODEL_CHOICES)})"
            ) from None
        raise


def _check_config(config: TaggerConfig) -> None:
    check_model_name(config.model)


def _config_flags(parser: argparse.ArgumentParser) -> None:
    shown = cli.default_shown(TaggerConfig.small(), none="all")

    parser.add_argument("--tags", choices=TAG_SETS,
                        help="tag set: auto = upos for CoNLL-U, ner otherwise " + shown("tags"))  # fmt: skip
    parser.add_argument("--limit", type=cli.positive_int, metavar="N",
                        help="at most N sentences per split " + shown("limit"))  # fmt: skip
    parser.add_argument("--generated", type=cli.int_at_least(8), metavar="N",
                        help="training sentences of builtin:teddy " + shown("generated"))  # fmt: skip
    parser.add_argument("--units", type=cli.positive_int, metavar="N",
                        help="recurrent units per direction " + shown("units"))  # fmt: skip
    parser.add_argument("--word-dim", dest="word_dim", type=cli.positive_int, metavar="N",
                        help="word embedding width " + shown("word_dim"))  # fmt: skip
    parser.add_argument("--char-dim", dest="char_dim", type=cli.nonnegative_int, metavar="N",
                        help="character embedding width, 0 = no character encoder "
                        + shown("char_dim"))  # fmt: skip
    parser.add_argument("--char-filters", dest="char_filters", type=cli.positive_int,
                        metavar="N", help="character CNN filters " + shown("char_filters"))  # fmt: skip
    parser.add_argument("--char-kernel", dest="char_kernel", type=cli.positive_int, metavar="N",
                        help="characters per character-CNN window (odd) " + shown("char_kernel"))  # fmt: skip
    parser.add_argument("--min-count", dest="min_count", type=cli.positive_int, metavar="N",
                        help="training occurrences a word needs for its own vector "
                        + shown("min_count"))  # fmt: skip
    parser.add_argument("--layers", type=cli.positive_int, metavar="N",
                        help="stacked recurrent layers " + shown("layers"))  # fmt: skip
    parser.add_argument("--word-dropout", dest="word_dropout", type=cli.float_in(0.0, 0.99),
                        metavar="P", help="probability of replacing a training word by [UNK] "
                        + shown("word_dropout"))  # fmt: skip
    parser.add_argument("--dropout", type=cli.float_in(0.0, 0.99), metavar="P",
                        help="dropout around the recurrent layer " + shown("dropout"))  # fmt: skip
    parser.add_argument("--learning-rate", dest="learning_rate", metavar="LR",
                        type=cli.float_in(0.0, 10.0, low_open=True),
                        help="Adam learning rate " + shown("learning_rate"))  # fmt: skip


APP = cli.AppSpec(
    module=APP_MODULE,
    description=DESCRIPTION,
    config_cls=TaggerConfig,
    builtin_data=BUILTIN_DATA,
    default_size="small",
    add_config_flags=_config_flags,
    check_config=_check_config,
)


def _kind(path: Path) -> str | None:
    """``"probe"`` for a probe run dir, ``"train"`` for a train run, None otherwise."""
    return RunDir.kind_of(path, APP_MODULE)


def _open_train_run(path: Path) -> RunDir:
    return RunDir.open_model_run(path, APP_MODULE, group_kind="probe", example="bilstm")


# ------------------------------------------------------------------------- train
def _add_train(parser: argparse.ArgumentParser) -> None:
    cli.add_train_arguments(parser, APP)


def _check_train(args: argparse.Namespace) -> None:
    if args.run_dir is not None and Path(args.run_dir).is_dir() and _kind(args.run_dir) == "probe":
        raise UsageError(f"--run-dir: {args.run_dir} is a probe run; train needs its own run dir")
    args.prepared = cli.prepare_training(APP, args)


def _summary(metrics: dict[str, Any]) -> str:
    where = f"on {metrics['sentences']:,} {metrics['split']} sentences of {metrics['data']}"
    if metrics["task"] == "ner":
        return (
            f"entity F1 {metrics['f1']:.3f} (precision {metrics['precision']:.3f}, recall "
            f"{metrics['recall']:.3f}), token accuracy {metrics['token_accuracy']:.3f} {where}"
        )
    return f"token accuracy {metrics['token_accuracy']:.4f} {where}"


def _run_train(args: argparse.Namespace) -> None:
    from apps.tagger.train import train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print)
    print(_summary(metrics))
    print(f"run dir: {run.path}")


def _print_tagged(trained: Any, sentences: list[str]) -> None:
    from apps.tagger.tokens import tokenize
    from apps.tagger.train import predict_tags

    token_lists = [tokenize(s) for s in sentences]
    for tokens, tags in zip(token_lists, predict_tags(trained, token_lists)):
        print("  " + _format_line(tokens, tags, trained.task))


def _run_main(args: argparse.Namespace) -> None:
    from apps.tagger.train import load_trained, train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print)
    trained = load_trained(run)
    print(_summary(metrics))
    if metrics["task"] == "ner":
        for name, row in metrics["per_type"].items():
            print(f"  {name:<14} P {row['precision']:.3f}  R {row['recall']:.3f}  "
                  f"F1 {row['f1']:.3f}  ({row['support']} entities)")  # fmt: skip
    print("examples (the decisive word's tag depends on the words after it):")
    _print_tagged(trained, list(EXAMPLES))
    if config.data.startswith("builtin:"):
        print("note: builtin:teddy sentences are GENERATED from templates (see --help); "
              "'python -m apps.tagger probe' compares a left-to-right LSTM with this BiLSTM")  # fmt: skip
    print(f"run dir: {run.path}")


# ---------------------------------------------------------------------- evaluate
def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    cli.add_data_argument(parser, "data to evaluate on")
    parser.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                        help="which split of the data (all: every sentence, e.g. of one file)")  # fmt: skip
    cli.add_quiet_argument(parser)


def _check_evaluate(args: argparse.Namespace) -> None:
    args.run = _open_train_run(args.run_dir)
    if args.data is not None:
        cli.check_source(APP, args.data)


def _run_evaluate(args: argparse.Namespace) -> None:
    from apps.common.errors import DataError
    from apps.tagger.data import load_splits
    from apps.tagger.train import evaluate_trained, load_trained

    trained = load_trained(args.run)
    config = trained.config
    spec = args.data or config.data
    tag_set = trained.meta.get("tag_set", config.tags)
    try:
        data = load_splits(spec, tag_set=tag_set, seed=config.seed, limit=config.limit,
                           generated=config.generated)  # fmt: skip
    except DataError as e:
        if "--tags" not in str(e):
            raise
        inner = str(e).split(": ", 1)[-1].split(";")[0]
        raise DataError(f"--data: {spec} does not hold the {tag_set} tags this run predicts "
                        f"({inner})") from None  # fmt: skip
    if data.task != trained.task:
        raise DataError(f"--data: {spec} holds {data.task} tags; the run predicts {trained.task}")
    metrics = evaluate_trained(trained, data.split(args.split), data=spec, split=args.split,
                               quiet=args.quiet)  # fmt: skip
    print(json.dumps(metrics, ensure_ascii=False))


# --------------------------------------------------------------------------- tag
def _add_tag(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    parser.add_argument("sentences", nargs="*", metavar="SENTENCE",
                        help="sentences to tag (default: --file, else lines on stdin)")  # fmt: skip
    parser.add_argument("--file", type=Path, metavar="FILE",
                        help="UTF-8 text file, one sentence per line (blank lines skipped)")  # fmt: skip
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per sentence: tokens, tags, entities")  # fmt: skip
    cli.add_quiet_argument(parser)


def _check_tag(args: argparse.Namespace) -> None:
    from apps.tagger.tokens import tokenize

    if args.sentences and args.file is not None:
        raise UsageError("give sentences as arguments or --file FILE, not both")
    args.run = _open_train_run(args.run_dir)
    if args.sentences:
        texts, origin = list(args.sentences), "sentence"
        for n, text in enumerate(texts, 1):
            if not tokenize(text):
                raise UsageError(f"sentence {n} is empty; give words to tag")
    else:
        if args.file is not None:
            lines = read_text_strict(args.file, flag="--file").splitlines()
            origin = f"--file {args.file}: line"
        elif sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no sentence to tag: give SENTENCE arguments, --file FILE or lines "
                             "on stdin")  # fmt: skip
        else:
            lines = decode_utf8_strict(sys.stdin.buffer.read(), "stdin").splitlines()
            origin = "stdin: line"
        texts = [line for line in lines if tokenize(line)]
        if not texts:
            where = f"--file {args.file}" if args.file is not None else "stdin"
            raise UsageError(f"{where} has no sentence to tag (only blank lines)")
    token_lists = []
    for n, text in enumerate(texts, 1):
        tokens = tokenize(text)
        if len(tokens) > MAX_TOKENS:
            raise UsageError(f"{origin} {n} has {len(tokens):,} tokens; the limit is "
                             f"{MAX_TOKENS:,} per sentence — split it")  # fmt: skip
        token_lists.append(tokens)
    args.inputs = list(zip(texts, token_lists))


def _entities(tokens: list[str], tags: list[str]) -> list[dict[str, Any]]:
    from apps.tagger.schemes import spans

    return [{"type": s.type, "start": s.start, "end": s.end,
             "text": " ".join(tokens[s.start : s.end])} for s in spans(tags)]  # fmt: skip


def _format_line(tokens: list[str], tags: list[str], task: str) -> str:
    from apps.tagger.train import format_tagged

    if task != "ner":
        return " ".join(f"{t}/{g}" for t, g in zip(tokens, tags))
    found = _entities(tokens, tags)
    shown = ", ".join(f"[{e['type']} {e['text']}]" for e in found) or "none"
    return f"{format_tagged(tokens, tags)}\n    entities: {shown}"


def _run_tag(args: argparse.Namespace) -> None:
    from apps.tagger.train import load_trained, predict_tags

    trained = load_trained(args.run)
    token_lists = [tokens for _, tokens in args.inputs]
    predicted = predict_tags(trained, token_lists, quiet=args.quiet)
    for (text, tokens), tags in zip(args.inputs, predicted):
        if args.json:
            record: dict[str, Any] = {"tokens": tokens, "tags": tags}
            if trained.task == "ner":
                record["entities"] = _entities(tokens, tags)
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(_format_line(tokens, tags, trained.task))


# ------------------------------------------------------------------------- probe
def _add_probe(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", dest="run_dirs", action="append", type=Path, metavar="DIR",
                        help="a trained NER run to probe (repeat it: e.g. an lstm and a bilstm "
                        "run); none: train an lstm and a bilstm on builtin:teddy first")  # fmt: skip
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="where the probe trains its two models and writes probe.json "
                        "(default: runs/tagger/probe-<timestamp>/; an existing one is reused)")  # fmt: skip
    parser.add_argument("--size", choices=("tiny", "small", "base"), default="small",
                        help="config preset of the models the probe trains")  # fmt: skip
    parser.add_argument("--seed", type=cli.nonnegative_int, metavar="N",
                        help="seed of the models the probe trains (default: the preset's)")  # fmt: skip
    parser.add_argument("--pairs", type=Path, metavar="FILE.json",
                        help='minimal pairs {"pairs": [["sentence a", "sentence b"]]} with '
                        "[TYPE words] entities (default: the app's probe_pairs.json)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    cli.add_quiet_argument(parser)


def _check_probe(args: argparse.Namespace) -> None:
    from apps.tagger.probe import load_pairs

    args.pairs_list = load_pairs(args.pairs)
    if args.run_dirs:
        if args.out is not None:
            raise UsageError("--out is for the models the probe trains; drop it with --run-dir")
        args.targets = [_open_train_run(p) for p in args.run_dirs]
        for run in args.targets:
            if run.read_meta().get("task") != "ner":
                raise UsageError(f"--run-dir: {run.path} is not an NER run; the probe needs "
                                 "entity tags")  # fmt: skip
        args.out_run = None
        return
    config = TaggerConfig.preset(args.size)
    if args.seed is not None:
        config = config.replace(seed=args.seed)
    path = args.out
    if path is None:
        path = default_run_dir(APP_MODULE)
        path = path.with_name("probe-" + path.name)
    kind = _kind(path) if Path(path).is_dir() else None
    if kind == "train":
        raise UsageError(f"--out: {path} is a train run, not a probe run; give a new folder")
    if kind == "probe":
        run = RunDir.open(path, APP_MODULE)
        saved = TaggerConfig.from_dict(run.read_config(), source=str(run.config_json))
        if saved.differences(config):
            raise UsageError(f"--out: {path} trained its probe models with another config; "
                             "give a new folder")  # fmt: skip
    else:
        run = RunDir.prepare(path, APP_MODULE)
    run.write_config(config.to_dict(), kind="probe", models=list(PROBE_MODELS))
    args.out_run, args.config = run, config
    args.targets = []


def _run_probe(args: argparse.Namespace) -> None:
    from apps.common import plots
    from apps.tagger.probe import probe_model
    from apps.tagger.train import load_trained, train_and_evaluate

    targets = list(args.targets)
    if args.out_run is not None:
        for name in PROBE_MODELS:
            sub = RunDir.prepare(args.out_run.path / "models" / name, APP_MODULE)
            if not args.quiet:
                print(f"== training {name} on builtin:teddy (generated sentences)")
            metrics = train_and_evaluate(args.config.replace(model=name), sub, quiet=args.quiet,
                                         log=None if args.quiet else print)  # fmt: skip
            if not args.quiet:
                print("   " + _summary(metrics))
            targets.append(sub)
    results = []
    for run in targets:
        trained = load_trained(run)
        spec = parse_cell_name(trained.config.model)
        result = probe_model(trained.model, trained.vocab, args.pairs_list,
                             name=trained.config.model, bidirectional=spec.bidirectional)  # fmt: skip
        result["run_dir"] = str(run.path)
        results.append(result)
    out_dir = args.out_run.path if args.out_run is not None else targets[-1].path
    atomic_write_json(out_dir / "probe.json", {"results": results})
    png = plots.bar_chart(
        [r["model"] for r in results],
        {"decisive words right": [r["decisive_right"] / (2 * r["pairs"]) for r in results],
         "pairs with both right": [r["both_right"] / r["pairs"] for r in results]},
        out_dir / "plots" / "probe.png",
        title="'Teddy' minimal pairs",
        ylabel="fraction",
    )  # fmt: skip
    if args.json:
        keys = ("model", "bidirectional", "pairs", "decisive_right", "both_right",
                "max_prefix_diff")  # fmt: skip
        print(json.dumps([{k: r[k] for k in keys} for r in results]))
        return
    _print_probe(results)
    print(f"probe results: {out_dir / 'probe.json'}, plot: {png}")


def _print_probe(results: list[dict[str, Any]]) -> None:
    print(f"{'model':<10} {'decisive words right':>22} {'pairs with both right':>23}")
    for r in results:
        n = r["pairs"]
        print(f"{r['model']:<10} {r['decisive_right']:>14}/{2 * n} ({r['decisive_right'] / (2 * n):4.0%})"
              f" {r['both_right']:>14}/{n} ({r['both_right'] / n:4.0%})")  # fmt: skip
    first = results[0]["results"][0]
    print(f"first pair, decisive word {first['word']!r}:")
    for r in results:
        p = r["results"][0]
        a, b = f"{p['word']} {p['next_a']}", f"{p['word']} {p['next_b']}"
        print(f"  {r['model']:<10} '{a}': {p['pred_a']:<6} (gold {p['gold_a']})   "
              f"'{b}': {p['pred_b']:<6} (gold {p['gold_b']})")  # fmt: skip
    if any(not r["bidirectional"] for r in results):
        print("a left-to-right model sees only the words up to the decisive one, identical in "
              "both sentences of a pair, so it gives both the same tag: at most one of each pair "
              "is right (checked: identical probabilities)")  # fmt: skip


# -------------------------------------------------------------------------- verbs
MAIN = cli.Verb(
    "main",
    "train a BiLSTM NER tagger on builtin:teddy (GENERATED sentences, --size small), evaluate "
    "it, tag the lecture's 'Teddy' sentences",
    _add_train,
    _run_main,
    _check_train,
)
VERBS = [
    cli.Verb("train", "train a tagger (resumes in an existing run dir), then evaluate it",
             _add_train, _run_train, _check_train),
    cli.Verb("evaluate", "entity P/R/F1 per type (NER) or token accuracy (POS) as one JSON line "
             "(also DIR/metrics.json)", _add_evaluate, _run_evaluate, _check_evaluate),
    cli.Verb("tag", "tag sentences given as arguments, in --file, or on stdin",
             _add_tag, _run_tag, _check_tag),
    cli.Verb("probe", "the 'Teddy' minimal pairs: a left-to-right LSTM vs a BiLSTM",
             _add_probe, _run_probe, _check_probe),
]  # fmt: skip

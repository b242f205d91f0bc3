"""The translation app's commands: main job, train, evaluate, translate, attend.

Each command validates its input in a ``check`` step (pure Python, before TensorFlow loads),
then runs. Results go to stdout; notes and errors to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from apps.common import cli
from apps.common.cells import parse_cell_name
from apps.common.errors import UsageError
from apps.common.rundir import RunDir
from apps.common.sources import decode_utf8_strict, read_text_strict
from apps.translation.config import BUILTIN_DATA, DIRECTIONS, LANGS, MODELS, TranslationConfig

APP_MODULE = "apps.translation"
MAX_SENTENCE_CHARS = 10_000
DESCRIPTION = (
    "Neural machine translation with recurrent encoder-decoders: a bidirectional encoder with\n"
    "Bahdanau attention (or a fixed-context encoder-decoder), greedy and beam-search decoding,\n"
    "sacreBLEU / chrF evaluation and attention heat maps."
)


# ------------------------------------------------------------------------ app wiring
def _check_config(config: TranslationConfig) -> None:
    parse_cell_name(config.cell, flag="--cell", allow_bidirectional=False)


def _config_flags(parser: argparse.ArgumentParser) -> None:
    shown = cli.default_shown(TranslationConfig.small())

    add = parser.add_argument
    add(
        "--cell",
        metavar="NAME",
        help="recurrent cell: gru, lstm, vanilla, mut1, mut2, mut3 or genotype:PATH.json; the "
        "encoder is its bidirectional version " + shown("cell"),
    )
    add("--lang", choices=LANGS, help="language of builtin:numbers " + shown("lang"))
    add(
        "--direction",
        choices=DIRECTIONS,
        help="forward: the data's own order (numbers: English -> --lang; pairs file: English -> "
        "other); reverse: the other way; auto: forward, but a pairs file goes into English "
        + shown("direction"),
    )
    add(
        "--limit",
        type=cli.int_at_least(10),
        metavar="N",
        help="use at most N pairs of a pairs file or tfds split " + shown("limit"),
    )
    add(
        "--numbers",
        type=cli.int_at_least(10),
        metavar="N",
        help="distinct numbers drawn by builtin:numbers " + shown("numbers"),
    )
    add(
        "--number-max",
        dest="number_max",
        type=cli.int_at_least(10),
        metavar="N",
        help="builtin:numbers draws from 0..N " + shown("number_max"),
    )
    add(
        "--units",
        type=cli.positive_int,
        metavar="N",
        help="encoder units per direction and decoder units " + shown("units"),
    )
    add(
        "--embedding-dim",
        dest="embedding_dim",
        type=cli.positive_int,
        metavar="N",
        help="token-vector width " + shown("embedding_dim"),
    )
    add(
        "--target-bpe",
        dest="target_bpe",
        type=cli.nonnegative_int,
        metavar="N",
        help="BPE merges of the target side (0: whole words) " + shown("target_bpe"),
    )
    add(
        "--source-bpe",
        dest="source_bpe",
        type=cli.nonnegative_int,
        metavar="N",
        help="BPE merges of the source side (0: whole words) " + shown("source_bpe"),
    )
    add("--learning-rate", dest="learning_rate", metavar="LR",
        type=cli.float_in(0.0, 10.0, low_open=True),
        help="Adam learning rate " + shown("learning_rate"))  # fmt: skip


APP = cli.AppSpec(
    module=APP_MODULE,
    description=DESCRIPTION,
    config_cls=TranslationConfig,
    builtin_data=BUILTIN_DATA,
    default_size="small",
    add_config_flags=_config_flags,
    check_config=_check_config,
)


def _add_model_choice(parser: argparse.ArgumentParser) -> None:
    # --model is a config field: restrict it to the two models in --help and parsing.
    for action in parser._actions:
        if action.dest == "model":
            action.choices = MODELS
            action.help = (
                "attention (bidirectional encoder + Bahdanau attention) or noattention "
                "(fixed-context encoder-decoder) (default: attention, from --size small)"
            )


def _open_run(path: Path) -> RunDir:
    run = RunDir.open(path, APP_MODULE)
    run.require_model()
    if not run.vocab_json.is_file():
        raise UsageError(f"--run-dir: {path} has no vocab.json (was training started?)")
    return run


def _add_beam(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument("--beam", type=cli.positive_int, default=default, metavar="N",
                        help="beam size (1: greedy decoding)")  # fmt: skip


# --------------------------------------------------------------------------- train/main
def _add_train(parser: argparse.ArgumentParser) -> None:
    cli.add_train_arguments(parser, APP)
    _add_model_choice(parser)


def _check_train(args: argparse.Namespace) -> None:
    args.prepared = cli.prepare_training(APP, args)


def _print_summary(metrics: dict[str, Any], run: RunDir) -> None:
    print(f"test ({metrics['examples']} pairs, beam {metrics['beam']}): exact match "
          f"{metrics['exact_match']:.2f}%, BLEU {metrics['bleu']:.2f}, chrF {metrics['chrf']:.2f}, "
          f"token accuracy {metrics['token_accuracy']:.2f}%")  # fmt: skip
    print(f"run dir: {run.path}")


def _run_train(args: argparse.Namespace) -> None:
    from apps.translation.train import train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print)
    _print_summary(metrics, run)


def _showcase_pair(pairs: list[tuple[str, str]]) -> str:
    """A held-out source for the attention map: the first with a hyphen (``twenty-one``:
    units before tens in German), else the first with at least 4 words."""
    for source, _ in pairs:
        if "-" in source and len(source.split()) >= 3:
            return source
    for source, _ in pairs:
        if len(source.split()) >= 4:
            return source
    return pairs[0][0]


def _run_main(args: argparse.Namespace) -> None:
    from apps.translation.train import load_data, load_trained, train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=print)
    trained = load_trained(run)
    test = load_data(config).test
    translator = trained.translator()
    shown = test[:5]
    print("examples (held-out test pairs, beam 4):")
    for (source, reference), result in zip(
        shown, translator.translate([s for s, _ in shown], beam=4)
    ):
        mark = "✓" if result.text == reference else "✗"
        print(
            f"  {mark} {source}\n      → {result.text}"
            + ("" if mark == "✓" else f"\n      reference: {reference}")
        )
    if trained.config.model == "attention":
        source = _showcase_pair(test)
        result = translator.translate([source], beam=4)[0]
        png = _write_attention(translator, result, run.plots / "attention.png")
        print(f"attention map of {source!r}: {png}")
    _print_summary(metrics, run)


# ------------------------------------------------------------------------------ evaluate
def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    cli.add_data_argument(parser, "data to evaluate on (its test split)")
    _add_beam(parser, 1)
    parser.add_argument("--compare", type=Path, metavar="DIR",
                        help="a second run dir (e.g. the noattention model) evaluated on the same "
                        "test split; plots/bleu_by_length.png then shows both")  # fmt: skip
    cli.add_quiet_argument(parser)


def _check_evaluate(args: argparse.Namespace) -> None:
    args.run = _open_run(args.run_dir)
    args.other = _open_run(args.compare) if args.compare is not None else None
    if args.data is not None:
        cli.check_source(APP, args.data)


def _run_evaluate(args: argparse.Namespace) -> None:
    from apps.translation.metrics import plot_by_length
    from apps.translation.train import evaluate_trained, load_data, load_trained

    trained = load_trained(args.run)
    data_spec = args.data or trained.config.data
    test = load_data(trained.config, data_spec, quiet=args.quiet).test
    metrics = evaluate_trained(trained, test, data=data_spec, beam=args.beam, quiet=args.quiet)
    if args.other is not None:
        other = load_trained(args.other)
        if load_data(other.config, data_spec).test != test:
            raise UsageError(f"--compare: {args.compare} was trained with another split of "
                             f"{data_spec} (seed, direction, language or limit differ)")  # fmt: skip
        other_metrics = evaluate_trained(other, test, data=data_spec, beam=args.beam, write=False,
                                         quiet=args.quiet)  # fmt: skip
        runs = {
            f"{trained.config.model} ({args.run_dir.name})": metrics["by_length"],
            f"{other.config.model} ({args.compare.name})": other_metrics["by_length"],
        }
        png = plot_by_length(
            runs,
            args.run.plots / "bleu_by_length.png",
            title=f"{data_spec}: scores by source length (beam {args.beam})",
        )
        metrics["compared"] = {
            k: other_metrics[k]
            for k in ("model", "cell", "bleu", "chrf", "exact_match", "token_accuracy")
        }
        metrics["compared"]["run_dir"] = str(args.compare)
        metrics["by_length_plot"] = str(png)
        args.run.write_json("metrics.json", metrics)
    print(json.dumps(metrics, ensure_ascii=False))


# ----------------------------------------------------------------------------- translate
def _add_translate(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    parser.add_argument(
        "sentences",
        nargs="*",
        metavar="SENTENCE",
        help="sentences to translate (default: --file, else lines on stdin)",
    )
    parser.add_argument(
        "--file",
        type=Path,
        metavar="FILE",
        help="UTF-8 text file, one sentence per line (a blank line gives a blank output line)",
    )
    _add_beam(parser, 4)
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per sentence: source, translation, tokens, notes",
    )
    cli.add_quiet_argument(parser)  # fmt: skip


def _read_inputs(args: argparse.Namespace) -> list[str]:
    if args.sentences and args.file is not None:
        raise UsageError("give sentences as arguments or --file FILE, not both")
    if args.sentences:
        for n, text in enumerate(args.sentences, 1):
            if not text.strip():
                raise UsageError(f"sentence {n} is empty; give words to translate")
        return list(args.sentences)
    if args.file is not None:
        lines = read_text_strict(args.file, flag="--file").splitlines()
        where = f"--file: {args.file}"
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError(
                "nothing to translate: give SENTENCE arguments, --file FILE or lines on stdin"
            )
        lines = decode_utf8_strict(sys.stdin.buffer.read(), "stdin").splitlines()
        where = "stdin"
    if not any(line.strip() for line in lines):
        raise UsageError(f"{where} has nothing to translate (only blank lines)")
    return lines


def _check_translate(args: argparse.Namespace) -> None:
    args.run = _open_run(args.run_dir)
    args.inputs = _read_inputs(args)
    for n, text in enumerate(args.inputs, 1):
        if len(text) > MAX_SENTENCE_CHARS:
            raise UsageError(f"sentence {n} has {len(text):,} characters; split it (at most "
                             f"{MAX_SENTENCE_CHARS:,})")  # fmt: skip


def _notes(result: Any, n: int, max_len: int) -> list[str]:
    notes = []
    if result.unknown:
        shown = ", ".join(repr(u) for u in result.unknown[:8])
        notes.append(f"sentence {n}: unknown to the model, read as <unk>: {shown}")
    if result.truncated:
        notes.append(f"sentence {n} has {max_len + result.truncated} tokens; the model reads at "
                     f"most {max_len}, the last {result.truncated} were dropped")  # fmt: skip
    return notes


def _run_translate(args: argparse.Namespace) -> None:
    from apps.translation.train import load_trained

    trained = load_trained(args.run)
    translator = trained.translator()
    texts = args.inputs
    todo = [k for k, t in enumerate(texts) if translator.prepare(t)[0]]
    readable = set(todo)
    for k, text in enumerate(texts):
        if text.strip() and k not in readable:
            raise UsageError(f"sentence {k + 1} has nothing the model can read ({text!r})")
    results = dict(zip(todo, translator.translate([texts[k] for k in todo], beam=args.beam,
                                                  quiet=args.quiet)))  # fmt: skip
    for k, text in enumerate(texts):
        result = results.get(k)
        if result is None:  # a blank line of a file: a blank line out
            print(
                json.dumps({"source": text, "translation": ""}, ensure_ascii=False)
                if args.json
                else ""
            )
            continue
        notes = _notes(result, k + 1, trained.config.max_source_len)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if args.json:
            print(json.dumps({"source": text, "translation": result.text,
                              "source_tokens": result.source_tokens,
                              "target_tokens": result.target_tokens,
                              "unknown": result.unknown, "truncated": result.truncated,
                              "score": result.score, "beam": args.beam},
                             ensure_ascii=False))  # fmt: skip
        else:
            print(result.text)


# -------------------------------------------------------------------------------- attend
def _add_attend(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    parser.add_argument("sentence", metavar="SENTENCE", help="the sentence to translate")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="PNG",
        help="where the heat map goes (default: DIR/plots/attention-<words>.png)",
    )
    _add_beam(parser, 4)
    cli.add_quiet_argument(parser)  # fmt: skip


def _slug(text: str) -> str:
    words = re.findall(r"\w+", text.lower())[:6]
    return "-".join(words)[:60] or "sentence"


def _check_attend(args: argparse.Namespace) -> None:
    args.run = _open_run(args.run_dir)
    if not args.sentence.strip():
        raise UsageError("SENTENCE is empty; give words to translate")
    if len(args.sentence) > MAX_SENTENCE_CHARS:
        raise UsageError(
            f"SENTENCE has {len(args.sentence):,} characters (at most {MAX_SENTENCE_CHARS:,})"
        )
    if args.out is not None and args.out.suffix.lower() != ".png":
        raise UsageError(f"--out: {args.out} must end in .png")
    if args.out is not None and args.out.is_dir():
        raise UsageError(f"--out: {args.out} is a folder; give a .png file name")
    meta = RunDir(args.run.path, APP_MODULE).read_meta()
    if meta.get("config", {}).get("model") == "noattention":
        raise UsageError(
            f"--run-dir: {args.run_dir} is a noattention model; it has no attention to show"
        )


def _write_attention(translator: Any, result: Any, out: Path) -> Path:
    """The attention map of a translation (source tokens on x, target tokens on y)."""
    from apps.common import plots
    from apps.translation.tokenize import END, display_token

    weights = translator.attention_map(result.source_ids, result.target_ids)
    text = result.text if len(result.text) <= 40 else result.text[:39] + "…"
    return plots.heatmap(weights, [display_token(t) for t in result.source_tokens],
                         [*(display_token(t) for t in result.target_tokens), END], out,
                         title=f"→ {text}")  # fmt: skip


def _run_attend(args: argparse.Namespace) -> None:
    from apps.translation.train import load_trained

    trained = load_trained(args.run)
    translator = trained.translator()
    ids, _, _, _ = translator.prepare(args.sentence)
    if not ids:
        raise UsageError(f"SENTENCE has nothing the model can read ({args.sentence!r})")
    out = args.out or args.run.plots / f"attention-{_slug(args.sentence)}.png"
    result = translator.translate([args.sentence], beam=args.beam)[0]
    for note in _notes(result, 1, trained.config.max_source_len):
        print(f"note: {note}", file=sys.stderr)
    png = _write_attention(translator, result, out)
    print(result.text)
    print(f"attention map: {png}")


# --------------------------------------------------------------------------------- verbs
MAIN = cli.Verb(
    "main",
    "train the attention model on builtin:numbers (English -> German numbers, --size small), "
    "evaluate it, show translations, write plots/attention.png",
    _add_train,
    _run_main,
    _check_train,
)
VERBS = [
    cli.Verb("train", "train a model (resumes in an existing run dir), then evaluate it",
             _add_train, _run_train, _check_train),
    cli.Verb("evaluate", "test-split BLEU / chrF / exact match / token accuracy as one JSON line "
             "(also DIR/metrics.json); --compare DIR plots both runs by source length",
             _add_evaluate, _run_evaluate, _check_evaluate),
    cli.Verb("translate", "translate sentences given as arguments, in --file, or on stdin",
             _add_translate, _run_translate, _check_translate),
    cli.Verb("attend", "translate one sentence and write its attention heat map (PNG)",
             _add_attend, _run_attend, _check_attend),
]  # fmt: skip

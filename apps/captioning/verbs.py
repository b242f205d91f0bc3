"""The captioning app's commands: main job, train, evaluate, caption, attend.

Each command validates its input in a ``check`` step (pure Python and Pillow, before TensorFlow
loads): bad images fail fast with one line naming the file. Results go to stdout; notes and
warnings to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from apps.captioning.config import BUILTIN_DATA, ENCODERS, CaptioningConfig
from apps.common import cli
from apps.common.cells import parse_cell_name
from apps.common.errors import UsageError
from apps.common.rundir import RunDir

APP_MODULE = "apps.captioning"
EXAMPLES_SHOWN = 5
SCENES_SAVED = 8
DESCRIPTION = (
    "Image captioning with a CNN encoder and an attending RNN decoder (Show, Attend and Tell,\n"
    "Xu et al. 2015): the lecture's one-to-many network. Default data: builtin:digits, scenes of\n"
    "scikit-learn's handwritten digits captioned from their layout; also a Flickr8k folder or\n"
    "tfds:coco_captions (when prepared)."
)


# ------------------------------------------------------------------- app wiring
def _check_config(config: CaptioningConfig) -> None:
    from apps.captioning.train import check_encoder_weights

    parse_cell_name(config.cell, flag="--cell", allow_bidirectional=False)
    check_encoder_weights(config)


def _config_flags(parser: argparse.ArgumentParser) -> None:
    shown = cli.default_shown(CaptioningConfig.small())

    parser.add_argument(
        "--encoder",
        choices=ENCODERS,
        help="image encoder: a small CNN trained from scratch, or a "
        "keras.applications network with --encoder-weights " + shown("encoder"),
    )
    parser.add_argument(
        "--encoder-weights",
        dest="encoder_weights",
        metavar="PATH",
        help="local ImageNet weights file (no top) of a keras.applications "
        "encoder; nothing is downloaded",
    )
    parser.add_argument(
        "--fine-tune",
        dest="fine_tune",
        action="store_const",
        const=True,
        help="also train a keras.applications encoder (default: frozen, its features cached)",
    )
    parser.add_argument(
        "--cell",
        metavar="NAME",
        help="decoder cell: vanilla|lstm|gru|mut1|mut2|mut3|genotype:PATH.json " + shown("cell"),
    )
    parser.add_argument(
        "--units", type=cli.positive_int, metavar="N", help="decoder hidden size " + shown("units")
    )
    parser.add_argument(
        "--image-size",
        dest="image_size",
        type=cli.int_at_least(16),
        metavar="N",
        help="side of the square model input (default: the source's "
        "own: 32 for builtin:digits, 128 for photos)",
    )
    parser.add_argument(
        "--scenes",
        type=cli.int_at_least(20),
        metavar="N",
        help="builtin:digits training scenes " + shown("scenes"),
    )
    parser.add_argument(
        "--limit",
        type=cli.int_at_least(2),
        metavar="N",
        help="at most N images per split of a folder / tfds source (default: all)",
    )
    parser.add_argument("--learning-rate", dest="learning_rate", type=cli.float_in(0, 1, low_open=True),
                        metavar="LR", help="Adam learning rate (cosine decay per epoch) "
                        + shown("learning_rate"))  # fmt: skip


APP = cli.AppSpec(
    module=APP_MODULE,
    description=DESCRIPTION,
    config_cls=CaptioningConfig,
    builtin_data=BUILTIN_DATA,
    default_size="small",
    add_config_flags=_config_flags,
    check_config=_check_config,
)


def _open_trained_run(path: Path) -> RunDir:
    run = RunDir.open(path, APP_MODULE)
    run.require_model()
    return run


# ------------------------------------------------------------------------- train
def _add_train(parser: argparse.ArgumentParser) -> None:
    cli.add_train_arguments(parser, APP)


def _check_train(args: argparse.Namespace) -> None:
    args.prepared = cli.prepare_training(APP, args)


def _log(line: str) -> None:
    """Progress lines to stdout, warnings to stderr."""
    print(line, file=sys.stderr if line.startswith("warning:") else sys.stdout, flush=True)


def _print_summary(metrics: dict[str, Any], run: RunDir) -> None:
    scores = ", ".join(f"BLEU-{n} {metrics[f'bleu_{n}']:.3f}" for n in range(1, 5))
    line = f"test: {scores}, CIDEr {metrics['cider']:.3f}"
    if "exact_caption_accuracy" in metrics:
        line += f", exact captions {100 * metrics['exact_caption_accuracy']:.2f}%"
    print(f"{line} on {metrics['images']} images")
    print(f"run dir: {run.path}")


def _run_train(args: argparse.Namespace) -> None:
    from apps.captioning.train import train_and_evaluate

    config, run, _ = args.prepared
    metrics = train_and_evaluate(config, run, quiet=args.quiet, log=_log)
    _print_summary(metrics, run)


def _run_main(args: argparse.Namespace) -> None:
    from apps.captioning.attention_plot import attention_figure
    from apps.captioning.train import caption_ids, evaluate_trained, train
    from apps.captioning.vocab import caption_words, detokenize

    config, run, _ = args.prepared
    trained, data = train(config, run, quiet=args.quiet, log=_log)
    metrics = evaluate_trained(trained, data.test, data=config.data, split_name="test")
    test = data.test
    count = min(EXAMPLES_SHOWN, len(test))
    ids = caption_ids(trained, test.images[:count])
    print("test examples (generated | reference):")
    for name, row, refs in zip(test.names, ids, test.captions):
        print(f"  {name}: {detokenize(caption_words(trained.tokenizer, row))} | {refs[0]}")
    tokens = ids[0]
    weights = trained.captioner.attention(test.images[0], tokens)
    words = caption_words(trained.tokenizer, tokens)
    picture = attention_figure(test.images[0], words, weights, trained.run.plots / "attention.png",
                               grid=tuple(trained.model.get_layer("encoder").output.shape[1:3]),
                               title=f"{test.names[0]}")  # fmt: skip
    print(f"attention picture: {picture}")
    saved = _save_scene_pngs(test, trained.run.samples / "scenes", SCENES_SAVED)
    if saved:
        print(f"test images saved for the caption command: {saved.parent}/ "
              f"(try: python -m {APP_MODULE} caption --run-dir {run.path} {saved})")  # fmt: skip
    _print_summary(metrics, run)


def _save_scene_pngs(split: Any, folder: Path, count: int) -> Path | None:
    """Write the first ``count`` test images as PNG files (lossless); returns the first path."""
    import io

    from PIL import Image

    from apps.common.rundir import atomic_write_bytes

    first = None
    for name, image in list(zip(split.names, split.images))[:count]:
        array = image[..., 0] if image.shape[-1] == 1 else image
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        stem = Path(name).stem
        path = folder / f"{stem}.png"
        atomic_write_bytes(path, buffer.getvalue())
        first = first or path
    return first


# ---------------------------------------------------------------------- evaluate
def _add_beam(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--beam", type=cli.positive_int, default=1, metavar="K",
                        help="beam size (1: greedy decoding)")  # fmt: skip


def _add_evaluate(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    cli.add_data_argument(parser, "data to evaluate on (its test split, all references)")
    _add_beam(parser)
    cli.add_quiet_argument(parser)


def _check_evaluate(args: argparse.Namespace) -> None:
    args.run = _open_trained_run(args.run_dir)
    if args.data is not None:
        cli.check_source(APP, args.data)


def _run_evaluate(args: argparse.Namespace) -> None:
    from apps.captioning.data import load_splits
    from apps.captioning.train import evaluate_trained, load_trained

    trained = load_trained(args.run)
    config = trained.config
    data_spec = args.data or config.data
    data = load_splits(data_spec, seed=config.seed, scenes=config.scenes, limit=config.limit,
                       image_size=trained.image_size, channels=trained.channels)  # fmt: skip
    for note in data.notes:
        print(f"warning: {note}", file=sys.stderr)
    metrics = evaluate_trained(trained, data.test, data=data_spec, split_name="test",
                               beam_size=args.beam)  # fmt: skip
    print(json.dumps(metrics, ensure_ascii=False))


# ----------------------------------------------------------------------- caption
def _add_caption(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    parser.add_argument(
        "images", nargs="+", metavar="IMAGE", help="image files (a folder stands for its images)"
    )
    _add_beam(parser)
    parser.add_argument(
        "--json", action="store_true", help="one JSON object per image: image, caption, tokens"
    )
    parser.add_argument(
        "--skip-bad",
        dest="skip_bad",
        action="store_true",
        help="report unreadable images on stderr and caption the others "
        "(default: stop at the first one)",
    )
    cli.add_quiet_argument(parser)  # fmt: skip


def _read_inputs(args: argparse.Namespace, paths: list[str]) -> None:
    from apps.captioning.images import expand_image_args, read_images
    from apps.captioning.train import run_geometry

    size, channels = run_geometry(args.run)
    files = expand_image_args(paths)
    args.paths, args.pixels, problems = read_images(files, size, channels, skip_bad=args.skip_bad)
    for problem in problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    if problems:
        print(f"warning: {len(problems)} of {len(files)} images skipped", file=sys.stderr)


def _check_caption(args: argparse.Namespace) -> None:
    args.run = _open_trained_run(args.run_dir)
    _read_inputs(args, args.images)


def _run_caption(args: argparse.Namespace) -> None:
    from apps.captioning.train import caption_ids, load_trained
    from apps.captioning.vocab import caption_words, detokenize

    trained = load_trained(args.run)
    ids = caption_ids(trained, args.pixels, args.beam)
    for path, row in zip(args.paths, ids):
        words = caption_words(trained.tokenizer, row)
        if args.json:
            print(json.dumps({"image": str(path), "caption": detokenize(words), "tokens": words,
                              "beam": args.beam}, ensure_ascii=False))  # fmt: skip
        else:
            print(f"{path}\t{detokenize(words)}")


# ------------------------------------------------------------------------ attend
def _add_attend(parser: argparse.ArgumentParser) -> None:
    cli.add_run_dir_argument(parser)
    parser.add_argument("image", metavar="IMAGE", help="the image to caption")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE.png",
        help="where the picture goes (default: DIR/plots/attention-<image>.png)",
    )
    _add_beam(parser)
    cli.add_quiet_argument(parser)  # fmt: skip


def _check_attend(args: argparse.Namespace) -> None:
    args.skip_bad = False
    args.run = _open_trained_run(args.run_dir)
    if Path(args.image).is_dir():
        raise UsageError(f"IMAGE: {args.image} is a folder; attend draws one image")
    if args.out is not None and args.out.suffix.lower() != ".png":
        raise UsageError(f"--out: {args.out} must end with .png")
    if args.out is not None and args.out.is_dir():
        raise UsageError(f"--out: {args.out} is a folder; give a .png file name")
    _read_inputs(args, [args.image])


def _run_attend(args: argparse.Namespace) -> None:
    from apps.captioning.attention_plot import attention_figure
    from apps.captioning.train import caption_ids, load_trained
    from apps.captioning.vocab import caption_words, detokenize

    trained = load_trained(args.run)
    image = args.pixels[0]
    tokens = caption_ids(trained, image[None], args.beam)[0]
    words = caption_words(trained.tokenizer, tokens)
    weights = trained.captioner.attention(image, tokens)
    out = args.out or trained.run.plots / f"attention-{Path(args.paths[0]).stem}.png"
    grid = tuple(trained.model.get_layer("encoder").output.shape[1:3])
    attention_figure(image, words, weights, out, grid=grid, title=Path(args.paths[0]).name)
    print(f"{args.paths[0]}\t{detokenize(words)}")
    print(f"attention picture: {out}")


# -------------------------------------------------------------------------- verbs
MAIN = cli.Verb(
    "main",
    "train on builtin:digits (--size small), evaluate, print test captions, draw attention",
    _add_train,
    _run_main,
    _check_train,
)
VERBS = [
    cli.Verb("train", "train a model (resumes in an existing run dir), then evaluate it",
             _add_train, _run_train, _check_train),
    cli.Verb("evaluate", "BLEU-1..4, CIDEr (and exact captions on builtin:digits) of the test "
             "split as one JSON line (also DIR/metrics.json)",
             _add_evaluate, _run_evaluate, _check_evaluate),
    cli.Verb("caption", "caption image files (or folders of them)",
             _add_caption, _run_caption, _check_caption),
    cli.Verb("attend", "a PNG of one image with each generated word's attention weights",
             _add_attend, _run_attend, _check_attend),
]  # fmt: skip

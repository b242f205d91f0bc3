"""Every app trained briefly on its builtin data, then exported to TFLite in each quantization.

For each app (sentiment, charlm, music, captioning, forecast, tagger, translation) this script

1. trains one run on the app's default builtin data (``python -m apps.<app> train`` in a
   subprocess) at the budget of :data:`BUDGETS` — a meaningfully trained model in 25-55 s of
   training on 2 shared CPU cores, 1-2.5 minutes per app with its exports — or reuses a run
   given with ``--run-dirs app=DIR,...``;
2. exports it with ``python -m export`` (called in-process) once per quantization ``none``,
   ``float16``, ``dynamic`` and ``int8`` under ``--seq-len auto`` (dynamic length with a
   ``WHILE`` loop, int8 included; the models that can only be exported at a fixed length —
   captioning, translation — at the app's default length, loops kept); should int8 come out
   at another length than float32, float32 is exported once more at int8's length, so that
   int8's share of the float32 size compares graphs of the same length;
3. reads back from each ``manifest.json``: file size and its share of the float32 file (same
   length mode), whether every op is builtin (re-checked on the file), max |diff| and argmax
   agreement against Keras on the app's real held-out parity inputs — for the model and for
   the step models exported beside it (charlm, music, captioning, translation; not with int8);
4. computes the app's metric from each ``.tflite`` file on real held-out data (LiteRT
   interpreter, batch 1), and from the Keras model on the same inputs:

   - sentiment: test accuracy (the whole test split);
   - tagger: token accuracy over the test sentences (tags unknown to the model skipped);
   - charlm: next-character accuracy on 256 evenly spaced validation windows;
   - translation: teacher-forced next-token accuracy on the test pairs;
   - captioning: teacher-forced next-word accuracy on test (image, caption) pairs;
   - forecast: MAE of the median forecast (data units) over the test origins;
   - music: piano roll: NLL per time step (sum over the 88 keys, lower is better) on the
     test pieces cut into consecutive ``seq_len`` windows; events: next-token accuracy.

The issue's targets it checks: builtin ops only; float32 parity max |diff| <= 1e-4; dynamic
and int8 within 1 accuracy point of float32 (an error metric: within 2 %); int8 file <= 30 %
of the float32 file. Writes ``benchmarks/out/export_apps.json`` and ``.md`` (command,
machine, tables) and prints the tables. Timings (training, export) are wall clock on a shared
machine: noisy.

Usage::

    python benchmarks/export_apps.py                      # all apps, ~10 min on 2 cores
    python benchmarks/export_apps.py --quick              # sentiment + tagger, tiny, ~70 s
    python benchmarks/export_apps.py --apps charlm,music --run-dirs charlm=runs/charlm
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import common

APPS = ("sentiment", "charlm", "music", "captioning", "forecast", "tagger", "translation")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")

# Training budget per app: flags after ``python -m apps.<app> train --run-dir DIR --seed N``.
# Chosen for a meaningfully trained model in about 1-3 minutes on 2 shared CPU cores.
BUDGETS: dict[str, tuple[str, ...]] = {
    "sentiment": ("--size", "small", "--epochs", "2"),
    "charlm": ("--size", "small", "--units", "128", "--epochs", "3"),
    "music": ("--size", "small", "--epochs", "12"),
    "captioning": ("--size", "small", "--scenes", "4000", "--epochs", "3"),
    "forecast": ("--size", "small", "--classical", "none"),
    "tagger": ("--size", "small"),
    "translation": ("--size", "small", "--numbers", "8000", "--units", "64", "--epochs", "4"),
}
QUICK_APPS = ("sentiment", "tagger")
QUICK_BUDGETS: dict[str, tuple[str, ...]] = {
    app: ("--size", "tiny", "--epochs", "2") for app in APPS
}

# The targets.
FLOAT_PARITY_MAX = 1e-4
PER_CHANNEL_LABEL = "int8, per-channel dense"
ACCURACY_POINTS = 1.0  # dynamic / int8 accuracy within this many points of float32
ERROR_RELATIVE = 0.02  # ... or an error metric (MAE) within this share of float32's
INT8_SIZE_SHARE = 0.30

CHARLM_WINDOWS = 256
MUSIC_WINDOWS = 256


# --------------------------------------------------------------------------- arguments
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--apps", default=",".join(APPS), help="comma-separated apps")
    p.add_argument(
        "--run-dirs", default="",
        help="app=DIR,... trained runs to reuse (those apps are not trained)",
    )  # fmt: skip
    p.add_argument(
        "--quantizations", default=",".join(QUANTIZATIONS),
        help="comma-separated: none, float16, dynamic, int8 (none is always exported: it is "
        "the reference)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=1234, help="training seed")
    p.add_argument("--parity-examples", type=int, default=64, help="python -m export's")
    p.add_argument("--latency-runs", type=int, default=10, help="python -m export's")
    p.add_argument("--latency-rounds", type=int, default=3,
                   help="alternating rounds of the TFLite vs Keras batch-1 latency table")  # fmt: skip
    p.add_argument(
        "--metric-examples", type=int, default=0,
        help="at most this many held-out examples for the metric (0: the app's default set)",
    )  # fmt: skip
    p.add_argument(
        "--work", default=str(common.DEFAULT_OUT / "export_apps_runs"),
        help="folder for the trained runs and their exports (an app's folder is replaced)",
    )  # fmt: skip
    p.add_argument("--out", default=str(common.DEFAULT_OUT), help="output folder")
    p.add_argument("--quick", action="store_true", help="sentiment and tagger, --size tiny")
    args = p.parse_args(argv)
    args.apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    if args.quick and args.apps == list(APPS):
        args.apps = list(QUICK_APPS)
    unknown = sorted(set(args.apps) - set(APPS))
    if unknown:
        p.error(f"--apps: unknown app(s) {unknown}; choose from {', '.join(APPS)}")
    args.quantizations = [q.strip() for q in args.quantizations.split(",") if q.strip()]
    bad = sorted(set(args.quantizations) - set(QUANTIZATIONS))
    if bad:
        p.error(f"--quantizations: unknown {bad}; choose from {', '.join(QUANTIZATIONS)}")
    if "none" not in args.quantizations:
        args.quantizations.insert(0, "none")
    args.quantizations.sort(key=QUANTIZATIONS.index)
    args.run_dirs = _run_dirs(p, args.run_dirs)
    return args


def _run_dirs(p: argparse.ArgumentParser, text: str) -> dict[str, Path]:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        app, sep, folder = item.partition("=")
        if not sep or app not in APPS or not folder:
            p.error(f"--run-dirs: expected app=DIR with app one of {', '.join(APPS)}, got {item!r}")
        out[app] = Path(folder)
    return out


# --------------------------------------------------------------------------- training
def budget(app: str, quick: bool) -> tuple[str, ...]:
    return (QUICK_BUDGETS if quick else BUDGETS)[app]


def train(app: str, run_dir: Path, flags: Sequence[str], seed: int) -> dict[str, Any]:
    """Trains ``app`` into a fresh ``run_dir`` (subprocess); returns time and the last lines."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", f"apps.{app}", "train", "--quiet", "--run-dir", str(run_dir),
           "--seed", str(seed), *flags]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    log = run_dir.parent / f"{app}.train.log"
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"training failed (exit {proc.returncode}): {' | '.join(tail)}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return {
        "command": " ".join(["python", *cmd[1:]]),
        "seconds": round(seconds, 1),
        "summary": [x for x in lines if str(run_dir) not in x and not x.startswith("data:")][-3:],
        "log": str(log),
    }


# --------------------------------------------------------------------------- exporting
def export(
    run_dir: Path,
    quantize: str,
    seq_len: str,
    out: Path,
    args,
    *,
    steps: bool = True,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """``python -m export RUN_DIR --format tflite --quantize Q --seq-len S --out OUT [extra]``,
    in-process; returns ``{"rc", "seconds", "message", "manifest"}``."""
    from export.__main__ import main as export_main

    if out.parent.exists():
        shutil.rmtree(out.parent)
    argv = [str(run_dir), "--format", "tflite", "--quantize", quantize, "--seq-len", seq_len,
            "--out", str(out), "--quiet", "--parity-examples", str(args.parity_examples),
            "--latency-runs", str(args.latency_runs)]  # fmt: skip
    if not steps:
        argv.append("--no-step-models")
    argv.extend(extra)
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = export_main(argv)
        except Exception as exc:  # noqa: BLE001 - reported; the other exports go on
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            rc = 1
    seconds = time.perf_counter() - start
    import keras

    keras.backend.clear_session()
    gc.collect()
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    manifest = None
    if rc == 0:
        manifest = json.loads((out.parent / "manifest.json").read_text())["exports"]
    return {
        "rc": rc,
        "seconds": round(seconds, 1),
        "message": _one_line(lines[-1]) if rc != 0 and lines else "",
        "notes": [line for line in lines if line.startswith("note:")],
        "manifest": manifest,
        "command": "python -m export " + " ".join(argv),
    }


def _one_line(text: str, width: int = 300) -> str:
    """An error line with immediate repeats collapsed ("failed to X" * 50) and cut short."""
    import re

    return re.sub(r"(.{8,80}?)\1+", r"\1", text[:5000])[:width]


def all_builtin(path: Path) -> bool:
    """Every op of the file is a builtin op (re-read from the flatbuffer)."""
    from export.ops import op_records

    return all(record.builtin for record in op_records(path))


def weight_bytes(path: Path) -> int:
    """Bytes of the file's constant buffers (weights, biases, tables); the rest of the file is
    the graph: operators, tensors and their quantization parameters."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    return sum(model.Buffers(i).DataLength() for i in range(model.BuffersLength()))


def row_of(app: str, label: str, entry: dict[str, Any], folder: Path) -> dict[str, Any]:
    parity = entry.get("parity") or {}
    return {
        "app": app,
        "export": label,
        "file": str(folder / entry["file"]),
        "quantization": entry["quantization"],
        "seq_len": entry["seq_len"],
        "bytes": entry["bytes"],
        "weight_bytes": weight_bytes(folder / entry["file"]),
        "builtin": all_builtin(folder / entry["file"]),
        "ops": entry.get("ops"),
        "max_abs_diff": parity.get("max_abs_diff"),
        "mean_abs_diff": parity.get("mean_abs_diff"),
        "agreement": parity.get("argmax_agreement"),
        "parity_examples": parity.get("examples"),
        "parity_inputs": parity.get("inputs"),
        "latency_ms": (entry.get("latency_ms") or {}).get("median"),
    }


# --------------------------------------------------------------------------- metrics
@dataclasses.dataclass
class Metric:
    """Held-out inputs with their labels and how to score the first model output.

    ``score(outputs)`` gets one first-output array per example (batch axis included) and
    returns the metric; ``higher`` tells whether higher is better (accuracy) or not (MAE).
    """

    name: str
    inputs: Any
    score: Callable[[list[Any]], float]
    higher: bool = True
    unit: str = "%"
    targets: list[Any] | None = None  # per-example class ids (-1: skipped), for agreement


def _real_positions(pred: Any, want: Any) -> tuple[Any, Any]:
    """Last-axis argmax of one output and its targets, over the target's real positions."""
    import numpy as np

    pred = np.asarray(pred)[0].argmax(-1).reshape(-1)
    want = np.asarray(want).reshape(-1)
    n = min(len(pred), len(want))
    keep = want[:n] >= 0
    return pred[:n][keep], want[:n][keep]


def real_agreement(got: list[Any], want: list[Any], targets: list[Any]) -> float:
    """Argmax agreement of two models' outputs on the real (labelled, unpadded) positions."""
    import numpy as np

    same = total = 0
    for g, w, t in zip(got, want, targets):
        a, _ = _real_positions(g, t)
        b, _ = _real_positions(w, t)
        n = min(len(a), len(b))
        same += int(np.sum(a[:n] == b[:n]))
        total += len(b)
    return same / max(total, 1)


def _token_accuracy(targets: list[Any]) -> Callable[[list[Any]], float]:
    """Accuracy of the last-axis argmax against per-example targets (``-1``: skipped); a
    position the model's output does not reach (truncated input) counts as wrong."""
    import numpy as np

    def score(outputs):
        right = total = 0
        for out, want in zip(outputs, targets):
            pred = np.asarray(out)[0].argmax(-1).reshape(-1)
            want = np.asarray(want).reshape(-1)
            keep = want >= 0
            n = min(len(pred), len(want))
            right += int(np.sum((pred[:n] == want[:n]) & keep[:n]))
            total += int(np.sum(keep))
        return 100.0 * right / max(total, 1)

    return score


def _limit(items, n: int):
    return items if not n else items[:n]


def metric_sentiment(run_dir: Path, config: dict, limit: int) -> Metric:
    from apps.common.text import WordTokenizer
    from apps.sentiment.data import encode_texts, load_splits

    data = load_splits(str(config["data"]), seed=int(config["seed"]), limit=config.get("limit"))
    texts, labels = data.split("test")
    texts, labels = _limit(texts, limit), _limit(labels, limit)
    tokenizer = WordTokenizer.load(run_dir / "vocab.json")
    ids = encode_texts(texts, tokenizer, config.get("max_length"))
    return Metric(f"test accuracy ({len(ids)} texts)", ids, _token_accuracy(labels),
                  targets=list(labels))  # fmt: skip


def metric_tagger(run_dir: Path, config: dict, limit: int) -> Metric:
    from apps.tagger.config import TaggerConfig
    from apps.tagger.data import Vocab, encode_batch, load_splits

    cfg = TaggerConfig.from_dict(dict(config), source="config.json")
    vocab = Vocab.load(run_dir / "vocab.json")
    data = load_splits(cfg.data, tag_set=cfg.tags, seed=cfg.seed, limit=cfg.limit,
                       generated=cfg.generated)  # fmt: skip
    sentences = _limit(data.split("test"), limit)
    inputs, targets = [], []
    for sentence in sentences:
        batch = encode_batch(vocab, [list(sentence.tokens)], width=vocab.max_chars)
        inputs.append({name: array[0] for name, array in batch.items()})
        targets.append(vocab.encode_tags(sentence.tags))
    tokens = sum(len(t) for t in targets)
    return Metric(f"token accuracy ({len(inputs)} test sentences, {tokens} tokens)", inputs,
                  _token_accuracy(targets), targets=targets)  # fmt: skip


def metric_charlm(run_dir: Path, config: dict, limit: int) -> Metric:
    from apps.charlm.config import CharLMConfig
    from apps.charlm.data import CharVocab, load_corpus
    from apps.charlm.gradients import probe_windows

    cfg = CharLMConfig.from_dict(dict(config), source="config.json")
    corpus = load_corpus(cfg.data, encoding=cfg.encoding, max_chars=cfg.max_chars,
                         val_fraction=cfg.val_fraction)  # fmt: skip
    ids = CharVocab.load(run_dir / "vocab.json").encode(corpus.val)
    windows = probe_windows(ids, limit or CHARLM_WINDOWS, cfg.bptt)  # (N, bptt + 1)
    name = f"next-char accuracy ({len(windows)} validation windows of {cfg.bptt})"
    targets = list(windows[:, 1:])
    return Metric(name, windows[:, :-1], _token_accuracy(targets), targets=targets)


def metric_translation(run_dir: Path, config: dict, limit: int) -> Metric:
    import numpy as np

    from apps.common.rundir import RunDir
    from apps.translation.config import TranslationConfig
    from apps.translation.data import add_markers
    from apps.translation.tokenize import END_ID, START_ID
    from apps.translation.train import encode_pairs, load_data, load_tokenizers

    cfg = TranslationConfig.from_dict(dict(config), source="config.json")
    source, target = load_tokenizers(RunDir(run_dir, "apps.translation"))
    pairs = _limit(load_data(cfg).test, limit)
    src, tgt, _ = encode_pairs(pairs, source, target, cfg, drop_long=False)
    inputs, targets = [], []
    for s, t in zip(src, tgt):
        target_in, target_out = add_markers(t, START_ID, END_ID)
        inputs.append([np.asarray(s, np.int32), np.asarray(target_in, np.int32)])
        targets.append(np.asarray(target_out, np.int32))
    name = f"teacher-forced token accuracy ({len(inputs)} test pairs)"
    return Metric(name, inputs, _token_accuracy(targets), targets=targets)


def metric_captioning(run_dir: Path, config: dict, limit: int) -> Metric:
    import numpy as np

    from apps.captioning.config import CaptioningConfig
    from apps.captioning.data import load_splits
    from apps.captioning.train import APP_MODULE, load_tokenizer, run_geometry
    from apps.captioning.vocab import encode_caption
    from apps.common.rundir import RunDir

    cfg = CaptioningConfig.from_dict(dict(config), source="config.json")
    run = RunDir(run_dir, APP_MODULE)
    size, channels = run_geometry(run)
    data = load_splits(cfg.data, seed=cfg.seed, scenes=cfg.scenes, limit=cfg.limit,
                       image_size=size, channels=channels)  # fmt: skip
    split, tokenizer = data.split("test"), load_tokenizer(run)
    index, texts = split.pairs()
    n = min(len(texts), limit or 512)
    captions = np.zeros((n, cfg.max_length + 1), np.int32)
    targets = []
    for row, text in enumerate(texts[:n]):
        ids = encode_caption(tokenizer, text, cfg.max_length)  # [START] w.. [END]
        captions[row, : len(ids) - 1] = ids[:-1]
        targets.append(np.asarray(ids[1:], np.int32))
    inputs = {"image": split.images[index[:n]].astype(np.float32), "caption": captions}
    return Metric(f"teacher-forced word accuracy ({n} test captions)", inputs,
                  _token_accuracy(targets), targets=targets)  # fmt: skip


def metric_forecast(run_dir: Path, config: dict, limit: int) -> Metric:
    import numpy as np

    from apps.common.rundir import RunDir
    from apps.forecast.data import features, gather_targets, gather_windows
    from apps.forecast.train import APP_MODULE, evaluation_origins, load_run_series, load_trained

    # the origins `python -m apps.forecast evaluate` scores, on the run's own series
    trained = load_trained(RunDir.open(run_dir, APP_MODULE))
    series = load_run_series(trained)
    origins = _limit(evaluation_origins(trained, series, own_series=True), limit)
    cfg, scaler = trained.config, trained.scaler
    L, H = cfg.lookback, cfg.horizon
    windows = gather_windows(features(series.values, scaler), origins, L)
    truth = gather_targets(series.target, origins, H)
    qi = cfg.median_index

    def score(outputs):
        preds = scaler.inverse_target(np.concatenate([np.asarray(o) for o in outputs]))
        return float(np.nanmean(np.abs(preds[..., qi] - truth)))

    return Metric(f"MAE of the median ({len(origins)} test origins)", windows, score,
                  higher=False, unit="")  # fmt: skip


def metric_music(run_dir: Path, config: dict, limit: int) -> Metric:
    """Piano roll: the benchmark's NLL per time step (sum over the 88 keys of the Bernoulli
    NLL of the output logits, mean over the real steps) on consecutive ``seq_len`` windows of
    the test pieces; events: next-token accuracy on the same windows."""
    import numpy as np

    from apps.music.export_hook import split_windows
    from apps.music.train import roll_nll

    pairs = split_windows(config, "test", limit or MUSIC_WINDOWS)
    inputs = [x for x, _ in pairs]
    seq_len = config["seq_len"]
    if config.get("representation", "roll") != "roll":
        targets = [np.asarray(y, np.int32) for _, y in pairs]
        name = f"next-token accuracy ({len(pairs)} test windows of <= {seq_len})"
        return Metric(name, inputs, _token_accuracy(targets), targets=targets)

    def score(outputs):
        total = steps = 0.0
        for out, (_, y) in zip(outputs, pairs):
            # padded steps of a fixed-length export are left out
            total += float(roll_nll(np.asarray(out)[0][: len(y)], y).sum())
            steps += len(y)
        return total / max(steps, 1.0)

    name = f"NLL per time step ({len(pairs)} test windows of <= {seq_len} steps)"
    return Metric(name, inputs, score, higher=False, unit="")


METRICS: dict[str, Callable[[Path, dict, int], Metric]] = {
    "sentiment": metric_sentiment,
    "tagger": metric_tagger,
    "charlm": metric_charlm,
    "translation": metric_translation,
    "captioning": metric_captioning,
    "forecast": metric_forecast,
    "music": metric_music,
}


def tflite_outputs(path: Path, inputs: Any, names_in: list[str], first: str) -> list[Any]:
    from export.parity import run_tflite

    _, outputs = run_tflite(path, inputs, names_in)
    return [out[first] for out in outputs]


def keras_outputs(model, inputs: Any, names_in: list[str]) -> list[Any]:
    """The Keras model's first output per example (examples of equal shapes batched)."""
    import keras
    import numpy as np

    from export.tflite import as_examples

    examples = as_examples(inputs, names_in)
    groups: dict[tuple, list[int]] = {}
    for i, example in enumerate(examples):
        groups.setdefault(tuple(np.shape(example[n]) for n in names_in), []).append(i)
    out: list[Any] = [None] * len(examples)
    for indices in groups.values():
        for start in range(0, len(indices), 256):
            chunk = indices[start : start + 256]
            batch = [np.concatenate([examples[i][n] for i in chunk]) for n in names_in]
            y = model(batch[0] if len(batch) == 1 else batch, training=False)
            y = keras.ops.convert_to_numpy(y[0] if isinstance(y, (list, tuple)) else y)
            for row, i in enumerate(chunk):
                out[i] = y[row : row + 1]
    return out


# --------------------------------------------------------------------------- one app
def run_app(app: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    record: dict[str, Any] = {"app": app, "errors": [], "exports": [], "steps": []}
    if app in args.run_dirs:
        run_dir = args.run_dirs[app]
        record["train"] = {"reused": str(run_dir)}
    else:
        run_dir = work / app
        flags = budget(app, args.quick)
        record["budget"] = list(flags)
        print(f"[{app}] training: {' '.join(flags)}", file=sys.stderr, flush=True)
        try:
            record["train"] = train(app, run_dir, flags, args.seed)
        except RuntimeError as err:
            record["errors"].append({"stage": "train", "message": str(err)})
            return record
    record["run_dir"] = str(run_dir)
    config = json.loads((run_dir / "config.json").read_text())["config"]

    exports_dir = work / f"{app}.exports"
    plan: list[tuple[str, str, str, tuple[str, ...]]] = [
        (q, q, "auto", ()) for q in args.quantizations
    ]
    if "int8" in args.quantizations:  # what the default per-tensor dense scales cost or save
        plan.append((PER_CHANNEL_LABEL, "int8", "auto", ("--per-channel-dense",)))
    done: dict[str, dict[str, Any]] = {}
    i = 0
    while i < len(plan):
        label, quantize, seq_len, extra = plan[i]
        i += 1
        folder = exports_dir / label.replace(" ", "_").replace("=", "").replace(",", "")
        print(f"[{app}] export {label}", file=sys.stderr, flush=True)
        reference = label != quantize  # a variant (float32 at int8's length, ...): no steps
        result = export(run_dir, quantize, seq_len, folder / "model.tflite", args,
                        steps=not reference, extra=extra)  # fmt: skip
        if result["rc"] != 0:
            record["errors"].append({"stage": "export", "quantization": label,
                                     "rc": result["rc"], "message": result["message"],
                                     "command": result["command"]})  # fmt: skip
            print(f"[{app}] export {label} FAILED: {result['message']}", file=sys.stderr)
            continue
        entries = result["manifest"]
        main = entries["model.tflite"]
        row = row_of(app, label, main, folder)
        row.update(export_seconds=result["seconds"], command=result["command"])
        record["exports"].append(row)
        done[label] = row
        for entry in entries.values():
            if "step" in entry:
                step = row_of(app, label, entry, folder)
                step.update(step_model=entry["step"]["name"], role=entry["step"].get("role"))
                record["steps"].append(step)
        # int8 at a fixed length while float32 is dynamic: float32 once more at that length
        none = done.get("none")
        if label == "int8" and none and none["seq_len"] != row["seq_len"]:
            plan.append((f"none T={row['seq_len']}", "none", str(row["seq_len"]), ()))

    _reference_sizes(record)
    _metrics(app, run_dir, config, record, args)
    record["targets"] = targets(record)
    return record


def _reference_sizes(record: dict[str, Any]) -> None:
    """``share_of_float32``: bytes / bytes of the float32 export of the same length."""
    floats = {r["seq_len"]: r["bytes"] for r in record["exports"] if r["quantization"] == "none"}
    for row in record["exports"]:
        ref = floats.get(row["seq_len"])
        row["float32_bytes"] = ref
        row["share_of_float32"] = row["bytes"] / ref if ref else None
    step_floats = {r["step_model"]: r["bytes"] for r in record["steps"]
                   if r["quantization"] == "none"}  # fmt: skip
    for row in record["steps"]:
        ref = step_floats.get(row["step_model"])
        row["share_of_float32"] = row["bytes"] / ref if ref else None


def _metrics(app: str, run_dir: Path, config: dict, record: dict[str, Any], args) -> None:
    record["metric"] = None
    if not record["exports"]:
        return
    import seqlayers  # noqa: F401 - registers the custom layers
    from apps.common.rundir import load_keras_model
    from export.app_hooks import get_app_hook
    from export.tflite import input_names, output_names

    hook = get_app_hook(app)
    for module in hook.modules:
        __import__(module)
    model = load_keras_model(run_dir / "model.keras", flag="RUN_DIR")
    names_in, first = input_names(model), output_names(model)[0]
    if app not in METRICS:  # no metric: latency on the app's real parity inputs
        _latencies(model, names_in, hook.parity_inputs(run_dir, config), record,
                   args.latency_rounds)  # fmt: skip
        return
    print(f"[{app}] metric", file=sys.stderr, flush=True)
    start = time.perf_counter()
    metric = METRICS[app](run_dir, config, args.metric_examples)
    reference = keras_outputs(model, metric.inputs, names_in)
    keras_value = metric.score(reference)
    for row in record["exports"]:
        outputs = tflite_outputs(Path(row["file"]), metric.inputs, names_in, first)
        row["metric"] = metric.score(outputs)
        if metric.targets is not None:
            row["real_agreement"] = real_agreement(outputs, reference, metric.targets)
    record["metric"] = {"name": metric.name, "higher_is_better": metric.higher,
                        "unit": metric.unit, "keras": keras_value,
                        "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    _latencies(model, names_in, metric.inputs, record, args.latency_rounds)


def _latencies(model, names_in: list[str], inputs: Any, record: dict[str, Any],
               rounds: int) -> None:  # fmt: skip
    """Batch-1 latency of every TFLite export (LiteRT, one thread) and of the Keras model as a
    compiled ``tf.function`` on the same real example, alternating for ``rounds`` rounds of 20
    timed calls each (medians of the round medians)."""
    import statistics

    import numpy as np
    import tensorflow as tf

    from export.parity import tflite_latency_ms
    from export.tflite import as_examples

    example = as_examples(inputs, names_in)[0]
    feed = [tf.constant(np.asarray(example[n])) for n in names_in]
    call = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))

    def keras_ms(runs: int = 20) -> float:
        for _ in range(3):
            tf.nest.map_structure(lambda t: t.numpy(), call(*feed))
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), call(*feed))
            times.append((time.perf_counter() - t0) * 1000.0)
        return statistics.median(times)

    keras_runs, tflite_runs = [], {r["export"]: [] for r in record["exports"]}
    for _ in range(rounds):
        keras_runs.append(keras_ms())
        for r in record["exports"]:
            tflite_runs[r["export"]].append(tflite_latency_ms(Path(r["file"]), example, runs=20))
    record["keras_latency_ms"] = statistics.median(keras_runs)
    for r in record["exports"]:
        r["tflite_latency_ms"] = statistics.median(tflite_runs[r["export"]])
        r["latency_vs_keras"] = r["tflite_latency_ms"] / record["keras_latency_ms"]


# --------------------------------------------------------------------------- targets
def _delta_ok(metric: dict[str, Any] | None, value: float | None, ref: float | None):
    if metric is None or value is None or ref is None:
        return None
    if metric["unit"] == "%":
        return bool(ref - value <= ACCURACY_POINTS) if metric["higher_is_better"] else None
    return bool(value <= ref * (1 + ERROR_RELATIVE))


def targets(record: dict[str, Any]) -> dict[str, Any]:
    """Which of the issue's targets this app meets (``None``: not measurable here)."""
    rows = {r["export"]: r for r in record["exports"]}
    out: dict[str, Any] = {}
    every = record["exports"] + record["steps"]
    out["builtin_only"] = all(r["builtin"] for r in every) if every else None
    floats = [r for r in every if r["quantization"] == "none"]
    out["float_parity"] = (
        all(r["max_abs_diff"] is not None and r["max_abs_diff"] <= FLOAT_PARITY_MAX
            for r in floats) if floats else None
    )  # fmt: skip
    metric = record.get("metric")
    ref = rows.get("none", {}).get("metric")
    for q in ("dynamic", "int8"):
        out[f"{q}_metric"] = _delta_ok(metric, rows.get(q, {}).get("metric"), ref)
    int8 = rows.get("int8")
    share = int8.get("share_of_float32") if int8 else None
    out["int8_size"] = None if share is None else bool(share <= INT8_SIZE_SHARE)
    if record["errors"]:
        out["exports_ok"] = False
    return out


# --------------------------------------------------------------------------- output
def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def tables(records: list[dict[str, Any]]) -> str:
    lines = [
        "| app | export | seq len | size KiB | weights KiB | % of float32 | builtin "
        + "| max abs diff | argmax agreement | agreement, real tokens | metric |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for rec in records:
        metric = rec.get("metric")
        for r in rec["exports"]:
            value = r.get("metric")
            if metric and value is not None:
                shown = f"{value:.2f}{metric['unit']}" if metric["unit"] else f"{value:.4g}"
            else:
                shown = ""
            lines.append(
                f"| {r['app']} | {r['export']} | {r['seq_len']} | {r['bytes'] / 1024:.1f} | "
                f"{r['weight_bytes'] / 1024:.1f} | {_fmt(r['share_of_float32'], '.1%')} | {'yes' if r['builtin'] else 'NO'} | "
                f"{_fmt(r['max_abs_diff'], '.2e')} | {_fmt(r['agreement'], '.1%')} | "
                f"{_fmt(r.get('real_agreement'), '.1%')} | {shown} |"
            )
        for err in rec["errors"]:
            lines.append(f"| {rec['app']} | {err.get('quantization', err['stage'])} | FAILED | "
                         f"| | | | | | | {err['message'][:200]} |")  # fmt: skip
    out = ["### Exports\n", "\n".join(lines) + "\n"]

    steps = [r for rec in records for r in rec["steps"]]
    if steps:
        lines = ["| app | step model | quantization | size KiB | % of float32 | builtin "
                 + "| max abs diff | argmax agreement |",
                 "|---|---|---|---:|---:|---|---:|---:|"]  # fmt: skip
        for r in steps:
            lines.append(
                f"| {r['app']} | {r['step_model']} ({r['role']}) | {r['quantization']} | "
                f"{r['bytes'] / 1024:.1f} | {_fmt(r['share_of_float32'], '.1%')} | "
                f"{'yes' if r['builtin'] else 'NO'} | {_fmt(r['max_abs_diff'], '.2e')} | "
                f"{_fmt(r['agreement'], '.1%')} |"
            )
        out += ["\n### Step models (exported beside the model; not with int8)\n",
                "\n".join(lines) + "\n"]  # fmt: skip

    def mark(v):
        return "n/a" if v is None else ("yes" if v else "**no**")

    lines = [("| app | training budget | train s | metric (Keras) | builtin only "
              "| float parity <= 1e-4 | dynamic within 1 pt / 2 % | int8 within 1 pt / 2 % "
              "| int8 <= 30 % of float32 |"),
             "|---|---|---:|---|---|---|---|---|---|"]  # fmt: skip
    for rec in records:
        t = rec.get("targets") or {}
        metric = rec.get("metric")
        if metric:
            k = metric["keras"]
            m = f"{metric['name']}: {k:.2f}{metric['unit']}" if metric["unit"] else \
                f"{metric['name']}: {k:.4g}"  # fmt: skip
        else:
            m = "none (argmax agreement reported)"
        train_info = rec.get("train") or {}
        flags = " ".join(rec.get("budget", [])) or f"reused {train_info.get('reused', '')}"
        lines.append(
            f"| {rec['app']} | `{flags}` | {train_info.get('seconds', '')} | {m} | "
            f"{mark(t.get('builtin_only'))} | {mark(t.get('float_parity'))} | "
            f"{mark(t.get('dynamic_metric'))} | {mark(t.get('int8_metric'))} | "
            f"{mark(t.get('int8_size'))} |"
        )
    out += ["\n### Targets\n", "\n".join(lines) + "\n"]

    lines = ["| app | Keras ms (tf.function) | export | seq len | TFLite ms | TFLite / Keras |",
             "|---|---:|---|---|---:|---:|"]  # fmt: skip
    for rec in records:
        keras_ms = rec.get("keras_latency_ms")
        for r in rec["exports"]:
            if r.get("tflite_latency_ms") is not None and keras_ms:
                lines.append(f"| {r['app']} | {keras_ms:.3f} | {r['export']} | {r['seq_len']} | "
                             f"{r['tflite_latency_ms']:.3f} | {r['latency_vs_keras']:.3f} |")  # fmt: skip
    if len(lines) > 2:
        out += ["\n### Batch-1 latency, TFLite vs Keras (same real example, one thread)\n",
                "\n".join(lines) + "\n"]  # fmt: skip
    return "".join(out)


NOTES = """
weights KiB: the file's constant buffers (the rest is the graph: ops, tensors, quantization
parameters; an unrolled fixed-length graph repeats them per step). % of float32: size over the
float32 export of the same length mode (a fixed-length int8 file
is compared with float32 exported at that length, row `none T=N`). max abs diff / argmax
agreement: manifest.json's parity against Keras on the app's real held-out parity inputs
(python -m export --parity-examples); for a sequence output at a fixed length it counts every
step, the padded ones too. agreement, real tokens: argmax agreement with Keras on the metric's
inputs, real (labelled, unpadded) positions only. metric: computed from each .tflite file
(LiteRT, batch 1) on real held-out data; Keras's value on the same inputs is in the Targets
table. Training and export times are wall clock on a shared 2-core machine (noisy).
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    records = []
    for app in args.apps:
        start = time.perf_counter()
        records.append(run_app(app, args))
        records[-1]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"[{app}] done in {records[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    table = tables(records)
    print(table)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings["run_dirs"] = {k: str(v) for k, v in args.run_dirs.items()}
    payload = {
        "benchmark": "export_apps",
        "command": common.command_line(),
        "machine": common.machine_info(),
        "settings": settings,
        "targets": {
            "float_parity_max_abs_diff": FLOAT_PARITY_MAX,
            "accuracy_points": ACCURACY_POINTS,
            "error_relative": ERROR_RELATIVE,
            "int8_share_of_float32": INT8_SIZE_SHARE,
        },
        "apps": records,
    }
    common.write_results(args.out, "export_apps", payload, table, NOTES)
    return 1 if any(rec["errors"] for rec in records) else 0


if __name__ == "__main__":
    sys.exit(main())

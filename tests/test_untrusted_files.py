"""Untrusted files: a ``model.keras`` that carries code is refused wherever a model is loaded,
nothing extracts archives, and nothing unpickles (or otherwise runs) what a user hands in.

(a) A ``.keras`` file whose ``Lambda`` layer creates a marker file when its function runs:
    keras runs it when the model is rebuilt unless ``safe_mode=True`` (checked here first, so
    the file is known to be dangerous). Every app's model-loading command and ``python -m
    export`` must exit 2 with one line, and the marker must not appear.
(b) The source tree holds no archive extraction at all (no ``ZipFile`` / ``tarfile`` /
    ``extractall`` / ``shutil.unpack_archive`` / ``get_file(extract=True)``), so there is no
    path-checked extraction helper to test: the scan below keeps it that way.
(c) No ``pickle`` / ``marshal`` / ``joblib`` / ``torch.load`` / ``np.load(allow_pickle=True)`` /
    unsafe YAML; the only ``load_model`` call is the one in ``apps.common.rundir`` and it passes
    ``safe_mode=True``; music21 always parses from source, never from its pickle cache.

The scanners are checked on sources that break each rule, so a scan that finds nothing means
something.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.common import cli

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("apps", "export", "seqlayers", "tuning", "benchmarks")
MARKER = "pwned-by-lambda"  # the evil Lambda creates this file in the current folder
TINY_FLAGS = {  # on top of: train --size tiny --epochs 1 --quiet
    "sentiment": ["--limit", "40"],
    "tagger": ["--generated", "24"],
    "music": ["--limit", "3"],
    "captioning": ["--scenes", "24"],
    "forecast": [],
    "translation": ["--numbers", "30", "--limit", "30"],
    "charlm": ["--max-chars", "4000"],
}
LOAD_COMMANDS = {  # a command of each app that loads model.keras
    "sentiment": ["predict", "fine"],
    "tagger": ["tag", "John smiles"],
    "music": ["generate", "--length", "8"],
    "captioning": ["evaluate"],
    "forecast": ["forecast"],
    "translation": ["translate", "one"],
    "charlm": ["generate", "--length", "5"],
}


def _main(app: str, argv: list[str]) -> int:
    verbs = importlib.import_module(f"apps.{app}.verbs")
    return cli.main(verbs.APP, verbs.VERBS, verbs.MAIN, argv)


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------ (a) code in model.keras
@pytest.fixture(scope="module")
def evil_model(tmp_path_factory) -> Path:
    """A ``.keras`` file with ``Lambda(lambda x: (open(MARKER, "w").close(), x)[1])``."""
    import keras

    folder = tmp_path_factory.mktemp("evil")
    old = os.getcwd()
    os.chdir(folder)  # building the model calls the lambda once: let it write here
    try:
        inputs = keras.Input((3,))
        # The file name is a literal: keras stores the lambda's bytecode, not this module.
        layer = keras.layers.Lambda(lambda x: (open("pwned-by-lambda", "w").close(), x)[1])
        keras.Model(inputs, layer(inputs)).save(folder / "evil.keras")
    finally:
        os.chdir(old)
    (folder / MARKER).unlink()
    return folder / "evil.keras"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One tiny trained run per app, ``runs/<app>``."""
    root = tmp_path_factory.mktemp("runs")
    old = os.environ.get("RNNSUITE_CACHE_DIR")  # parsed chorales: not in the user's ~/.cache
    os.environ["RNNSUITE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        for app, flags in TINY_FLAGS.items():
            argv = ["train", "--size", "tiny", "--epochs", "1", "--quiet",
                    "--run-dir", str(root / app), *flags]  # fmt: skip
            assert _main(app, argv) == 0, app
    finally:
        if old is None:
            os.environ.pop("RNNSUITE_CACHE_DIR", None)
        else:
            os.environ["RNNSUITE_CACHE_DIR"] = old
    return root


def _with_evil_model(runs: Path, app: str, evil_model: Path, folder: Path) -> Path:
    run = folder / app
    shutil.copytree(runs / app, run)
    shutil.copyfile(evil_model, run / "model.keras")
    return run


def test_the_evil_model_runs_its_code_when_loaded_unsafely(evil_model, tmp_path, monkeypatch):
    import keras

    monkeypatch.chdir(tmp_path)
    keras.saving.load_model(evil_model, safe_mode=False)
    assert (tmp_path / MARKER).exists()


def test_the_shared_loader_refuses_the_evil_model(evil_model, tmp_path, monkeypatch):
    from apps.common.errors import RunDirError
    from apps.common.rundir import load_keras_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(RunDirError, match="holds Python code"):
        load_keras_model(evil_model)
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("app", sorted(LOAD_COMMANDS))
def test_every_app_refuses_a_model_with_code(app, runs, evil_model, tmp_path, monkeypatch, capsys):
    run = _with_evil_model(runs, app, evil_model, tmp_path / "runs")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _hashes(run)
    verb, *rest = LOAD_COMMANDS[app]
    capsys.readouterr()
    assert _main(app, [verb, "--run-dir", str(run), *rest]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "model.keras holds Python code" in err
    assert not (work / MARKER).exists() and list(work.iterdir()) == []
    assert _hashes(run) == before


def test_export_refuses_a_model_with_code(runs, evil_model, tmp_path, monkeypatch, capsys):
    from export.__main__ import main

    run = _with_evil_model(runs, "sentiment", evil_model, tmp_path / "runs")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _hashes(run)
    capsys.readouterr()
    assert main([str(run), "--format", "tflite", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "RUN_DIR:" in err and "holds Python code" in err
    assert not (work / MARKER).exists() and _hashes(run) == before


# ------------------------------------------------------------------- source scanning
def _name(node: ast.AST) -> str:
    """Dotted name of a call target: ``np.load``, ``zipfile.ZipFile().extractall``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_name(node.func)}()"
    return "?"


def _keyword(call: ast.Call, name: str) -> object:
    """The constant value of keyword ``name`` (``None`` if absent, ``...`` if not a constant)."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else ...
    return None


def _calls(source: str) -> Iterator[tuple[int, str, ast.Call]]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            yield node.lineno, _name(node.func), node


ARCHIVE_CALLS = ("extractall", "extract", "extractfile", "unpack_archive", "ZipFile", "TarFile",
                 "tarfile.open", "download_and_extract")  # fmt: skip
UNPICKLING_CALLS = ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "dill.loads",
                    "joblib.load", "marshal.load", "marshal.loads", "shelve.open", "torch.load",
                    "read_pickle", "yaml.unsafe_load", "yaml.full_load", "jsonpickle.decode",
                    "enable_unsafe_deserialization")  # fmt: skip


def archive_extractions(source: str) -> list[str]:
    """Calls that open or unpack zip / tar archives."""
    found = []
    for line, name, call in _calls(source):
        last = name.rsplit(".", 1)[-1].rstrip("()")
        if last in ARCHIVE_CALLS or name.endswith(ARCHIVE_CALLS):
            found.append(f"{line}: {name}")
        elif last == "get_file" and _keyword(call, "extract") not in (None, False):
            found.append(f"{line}: {name}(extract=...)")
    return found


def unsafe_loads(source: str, *, loader_allowed: bool = False) -> list[str]:
    """Calls that can run code from a file: unpickling, unsafe YAML, keras without safe mode,
    music21 reading its pickle cache."""
    found = []
    for line, name, call in _calls(source):
        last = name.rsplit(".", 1)[-1]
        if name.endswith(UNPICKLING_CALLS):
            found.append(f"{line}: {name}")
        elif last == "load" and name.split(".")[0] in ("np", "numpy"):
            if _keyword(call, "allow_pickle") not in (None, False):
                found.append(f"{line}: {name}(allow_pickle=...)")
        elif name == "yaml.load":
            loader = next((ast.unparse(k.value) for k in call.keywords if k.arg == "Loader"), "")
            if "Safe" not in loader:
                found.append(f"{line}: {name} without a SafeLoader")
        elif name == "load_model" or name.endswith((".saving.load_model", ".models.load_model")):
            if not loader_allowed:
                found.append(f"{line}: {name} outside apps.common.rundir.load_keras_model")
            elif _keyword(call, "safe_mode") is not True:
                found.append(f"{line}: {name} without safe_mode=True")
        elif name.endswith("converter.parse") and _keyword(call, "forceSource") is not True:
            found.append(f"{line}: {name} without forceSource=True (music21 would unpickle)")
        if _keyword(call, "safe_mode") is False:
            found.append(f"{line}: {name}(safe_mode=False)")
    return found


def _sources() -> Iterator[tuple[str, str]]:
    for folder in SOURCE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            yield str(path.relative_to(REPO)), path.read_text(encoding="utf-8")


def test_the_scan_reads_the_whole_source_tree():
    names = [name for name, _ in _sources()]
    assert len(names) > 100
    assert {"apps/common/rundir.py", "export/__main__.py", "tuning/verbs.py"} <= set(names)


def test_no_archive_is_ever_extracted():
    # There is no extraction in apps/, export/, tuning/ (nor seqlayers/, benchmarks/): datasets
    # are read in their published layout, and tfds' own downloads are unpacked by tfds. So
    # there is no path-checked extraction helper to test; this scan keeps it that way.
    found = {name: hits for name, source in _sources() if (hits := archive_extractions(source))}
    assert found == {}


def test_nothing_unpickles_or_loads_a_model_unsafely():
    loader = "apps/common/rundir.py"
    found = {
        name: hits
        for name, source in _sources()
        if (hits := unsafe_loads(source, loader_allowed=name == loader))
    }
    assert found == {}
    loads = [call for _, name, call in _calls((REPO / loader).read_text()) if name.endswith(
        "load_model")]  # fmt: skip
    assert len(loads) == 1 and _keyword(loads[0], "safe_mode") is True


BAD_SOURCE = """
import pickle, tarfile, zipfile, shutil, numpy as np, yaml, torch, joblib, keras
zipfile.ZipFile(path).extractall(target)
tarfile.open(path).extractall(target)
shutil.unpack_archive(path, target)
keras.utils.get_file("x", url, extract=True)
pickle.load(f)
pickle.loads(data)
np.load(path, allow_pickle=True)
torch.load(path)
joblib.load(path)
yaml.load(text, Loader=yaml.Loader)
yaml.load(text)
keras.saving.load_model(path, safe_mode=False)
keras.config.enable_unsafe_deserialization()
music21.converter.parse(path)
"""


def test_the_scanners_find_each_forbidden_call():
    def lines(hits: list[str]) -> set[int]:
        return {int(hit.split(":")[0]) for hit in hits}

    assert lines(archive_extractions(BAD_SOURCE)) == {3, 4, 5, 6}  # the archive lines
    found = unsafe_loads(BAD_SOURCE)
    assert lines(found) == set(range(7, len(BAD_SOURCE.splitlines()) + 1))  # all the others
    assert any("safe_mode=False" in hit for hit in found)
    safe = "np.load(p, allow_pickle=False)\nzipfile.is_zipfile(p)\nyaml.safe_load(t)\n"
    assert archive_extractions(safe) == [] and unsafe_loads(safe) == []
    assert unsafe_loads("keras.saving.load_model(p, safe_mode=True)") != []  # not the loader
    assert unsafe_loads("keras.saving.load_model(p, safe_mode=True)", loader_allowed=True) == []

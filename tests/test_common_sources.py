"""apps.common.sources: --data parsing and strict UTF-8 reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.common.errors import DataError
from apps.common.sources import Source, parse_source, read_lines_strict, read_text_strict


def test_builtin():
    assert parse_source("builtin:tweets", ["tweets"]) == Source("builtin", "tweets")
    with pytest.raises(DataError) as info:
        parse_source("builtin:tweet", ["tweets", "toy"])
    assert str(info.value) == (
        "--data: unknown builtin dataset 'tweet' (choose from builtin:tweets, builtin:toy)"
    )


@pytest.mark.parametrize(
    "spec, name, split",
    [
        ("tfds:imdb_reviews", "imdb_reviews", None),
        ("tfds:imdb_reviews:test", "imdb_reviews", "test"),
        ("tfds:imdb_reviews:train[:80%]", "imdb_reviews", "train[:80%]"),
        ("tfds:imdb_reviews/plain_text:1.0.0", "imdb_reviews/plain_text:1.0.0", None),
        ("tfds:imdb_reviews/plain_text:1.0.0:train", "imdb_reviews/plain_text:1.0.0", "train"),
    ],
)
def test_tfds(spec, name, split):
    source = parse_source(spec)
    assert (source.kind, source.name, source.split, source.path) == ("tfds", name, split, None)
    assert source.spec == spec


def test_bad_tfds_and_empty():
    with pytest.raises(DataError, match="malformed tfds source 'tfds:'"):
        parse_source("tfds:")
    with pytest.raises(DataError, match="--data: empty data source"):
        parse_source("  ")


def test_path(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("text,label\n")
    source = parse_source(str(f))
    assert source == Source("path", str(f), None, f)
    with pytest.raises(DataError) as info:
        parse_source("/nonexistent/x.csv", ["tweets"])
    assert str(info.value) == (
        "--data: no such file or directory: /nonexistent/x.csv "
        "(give builtin:NAME, tfds:NAME[:SPLIT] or a path)"
    )
    with pytest.raises(DataError, match="^--eval-data: no such file"):
        parse_source("missing.txt", flag="--eval-data")


def test_strict_utf8(tmp_path):
    good = tmp_path / "good.txt"
    good.write_bytes("\ufeffčaj\nsecond\n".encode())
    assert read_text_strict(good) == "čaj\nsecond\n"
    assert read_lines_strict(good) == ["čaj", "second"]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nca\xe8 latin-1\n")
    with pytest.raises(DataError) as info:
        read_text_strict(bad, flag="--file")
    assert str(info.value) == (
        f"--file: {bad} is not valid UTF-8: byte 0xe8 at byte offset 12 (line 2); save it as UTF-8"
    )
    with pytest.raises(DataError, match="--file: no such file"):
        read_text_strict(Path(tmp_path / "nope.txt"), flag="--file")


def test_tfds_without_network_is_one_line_data_error(tmp_path, monkeypatch):
    from apps.common import sources

    monkeypatch.setattr(sources, "network_available", lambda *a, **k: False)
    with pytest.raises(DataError) as info:
        sources.load_tfds(parse_source("tfds:imdb_reviews:train"), data_dir=str(tmp_path))
    assert str(info.value) == (
        "--data: tfds:imdb_reviews:train is not downloaded and there is no network "
        "(cannot resolve storage.googleapis.com); connect once or give a local path"
    )
    with pytest.raises(DataError, match="^--data: tensorflow-datasets cannot find tfds:nope_xyz"):
        sources.load_tfds(parse_source("tfds:nope_xyz"), data_dir=str(tmp_path))

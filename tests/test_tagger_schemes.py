"""apps.tagger schemes, tokens and metrics: conversions, span reading, hand-computed F1."""

from __future__ import annotations

import random

import pytest

from apps.tagger import schemes
from apps.tagger.metrics import entity_scores, per_tag_accuracy, token_accuracy
from apps.tagger.schemes import Span
from apps.tagger.tokens import detokenize, parse_markup, tokenize


def _random_spans(rng: random.Random, length: int) -> list[Span]:
    out, i = [], 0
    while i < length:
        if rng.random() < 0.4:
            end = min(length, i + rng.randint(1, 3))
            out.append(Span(rng.choice("ABC"), i, end))
            i = end
        else:
            i += 1
    return out


def test_known_conversions():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]
    bioes = ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-ORG"]
    assert schemes.to_iob2(iob1) == iob2
    assert schemes.convert(iob2, "BIOES") == bioes
    assert schemes.convert(bioes, "IOB1") == iob1
    assert schemes.to_iob2(bioes) == iob2
    assert schemes.to_iob2(["L-X", "U-Y"]) == ["B-X", "B-Y"]  # BILOU spelling, read as E / S
    assert schemes.detect_scheme([iob1]) == "IOB1"
    assert schemes.detect_scheme([iob2]) == "IOB2"
    assert schemes.detect_scheme([bioes]) == "BIOES"
    assert schemes.detect_scheme([["O", "O"]]) == "IOB2"


@pytest.mark.parametrize("scheme", schemes.SCHEMES)
def test_round_trip_random_spans(scheme):
    rng = random.Random(7)
    for _ in range(300):
        length = rng.randint(0, 12)
        entities = _random_spans(rng, length)
        tags = schemes.from_spans(entities, length, scheme)
        assert schemes.spans(tags) == entities
        for other in schemes.SCHEMES:
            assert schemes.convert(schemes.convert(tags, other), scheme) == tags


def test_spans_match_seqeval_on_arbitrary_tag_sequences():
    from seqeval.metrics.sequence_labeling import get_entities

    rng = random.Random(3)
    for _ in range(500):
        tags = [rng.choice(["O", "B-A", "I-A", "B-B", "I-B"]) for _ in range(rng.randint(0, 10))]
        ours = [(s.type, s.start, s.end - 1) for s in schemes.spans(tags)]
        assert ours == get_entities(tags), tags
        # the IOB2 repair keeps exactly those spans
        assert schemes.spans(schemes.to_iob2(tags)) == schemes.spans(tags)


@pytest.mark.parametrize("bad", ["PER", "X-LOC", "B-", "b-PER", "B-PER extra", ""])
def test_tags_outside_the_scheme(bad):
    with pytest.raises(schemes.SchemeError, match="outside the entity schemes"):
        schemes.split_tag(bad)
    with pytest.raises(schemes.SchemeError) as info:
        schemes.detect_scheme([["O"], ["O", bad]])
    assert info.value.index == 1


def test_mixed_schemes_are_rejected():
    with pytest.raises(schemes.SchemeError, match="BIOES"):
        schemes.detect_scheme([["S-PER", "O"], ["O", "I-LOC"]])
    with pytest.raises(schemes.SchemeError, match="IOB1.*IOB2"):
        schemes.detect_scheme([["I-PER", "O"], ["O", "B-LOC"]])


def test_entity_f1_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "I-LOC"]]
    # gold spans: PER[0:2] LOC[3:4] ORG[0:1]; predicted: PER[0:2] ORG[3:4] ORG[0:2] LOC[2:3]
    # (I-LOC after I-ORG starts a LOC entity, as conlleval reads it). Exact matches: PER only.
    scores = entity_scores(gold, pred)
    assert scores["entities"] == 3 and scores["predicted"] == 4
    assert scores["precision"] == pytest.approx(1 / 4)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3))
    assert scores["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert scores["per_type"]["ORG"]["precision"] == 0.0
    assert scores["per_type"]["ORG"]["support"] == 1
    assert scores["per_type"]["LOC"]["recall"] == 0.0
    assert token_accuracy(gold, pred) == pytest.approx(4 / 7)
    assert per_tag_accuracy([["A", "B", "A"]], [["A", "A", "A"]]) == {
        "A": {"accuracy": 1.0, "support": 2},
        "B": {"accuracy": 0.0, "support": 1},
    }


def test_entity_f1_without_entities_and_bad_lengths():
    assert entity_scores([["O"]], [["O"]])["f1"] == 0.0
    with pytest.raises(ValueError, match="gold tags"):
        entity_scores([["O", "O"]], [["O"]])


def test_tokenize_and_markup():
    assert tokenize('He said, "Teddy\'s bears aren\'t on sale!"') == [
        "He", "said", ",", '"', "Teddy", "'s", "bears", "are", "n't", "on", "sale", "!", '"',
    ]  # fmt: skip
    assert tokenize("U.S. costs 3.5% via e-mail") == ["U.S", ".", "costs", "3.5", "%", "via",
                                                      "e-mail"]  # fmt: skip
    assert tokenize("   \t ") == []
    tokens, tags = parse_markup('He said, "[PER Teddy Roosevelt] was in [LOC New York]!"')
    assert tokens[4:6] == ["Teddy", "Roosevelt"]
    assert tags == ["O", "O", "O", "O", "B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O", "O"]
    assert detokenize(tokens) == 'He said, "Teddy Roosevelt was in New York!"'
    with pytest.raises(ValueError, match="unbalanced"):
        parse_markup("[PER Teddy")

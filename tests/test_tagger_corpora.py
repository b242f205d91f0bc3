"""apps.tagger end to end on the shared real corpora: tiny train / evaluate / tag on each."""

from __future__ import annotations

import json

import pytest

from apps.common import cli
from apps.tagger import verbs
from apps.tagger.config import TaggerConfig
from apps.tagger.conll import UPOS_TAGS

WNUT_TYPES = {"person", "location", "corporation", "product", "creative-work", "group"}


def _tiny(data: str, **changes) -> TaggerConfig:
    return TaggerConfig.tiny().replace(**{"data": data, "limit": 80, **changes})


def test_ud_english_ewt_upos(shared_data, tmp_path, capsys):
    from apps.tagger.train import train_and_evaluate

    ewt = shared_data / "ner" / "ud_english_ewt"
    config = _tiny(str(ewt), layers=2, epochs=2)  # UPOS_RECIPE's two layers, in small
    metrics = train_and_evaluate(config, tmp_path / "upos")
    best = json.loads((tmp_path / "upos" / "checkpoints" / "best.json").read_text())
    # part of speech keeps the epoch with the best validation accuracy
    assert best["monitor"] == "val_accuracy" and best["mode"] == "max"
    history = (tmp_path / "upos" / "history.csv").read_text().splitlines()
    assert len(history) == 3
    assert metrics["task"] == "pos" and "f1" not in metrics
    assert metrics["sentences"] == 80 and 0.0 < metrics["token_accuracy"] <= 1.0
    assert set(metrics["per_tag"]) <= set(UPOS_TAGS)
    assert (tmp_path / "upos" / "plots" / "confusion.png").is_file()
    tagged = cli.main(verbs.APP, verbs.VERBS, verbs.MAIN,
                      ["tag", "--run-dir", str(tmp_path / "upos"), "--json", "I saw her ."])  # fmt: skip
    record = json.loads(capsys.readouterr().out)
    assert tagged == 0 and "entities" not in record and set(record["tags"]) <= set(UPOS_TAGS)


def test_wnut17_and_wikigold(shared_data, tmp_path, capsys):
    from apps.tagger.train import train_and_evaluate

    wnut = train_and_evaluate(_tiny(str(shared_data / "ner" / "wnut17")), tmp_path / "wnut")
    assert wnut["task"] == "ner" and wnut["data"].endswith("wnut17")
    assert set(wnut["per_type"]) <= WNUT_TYPES and wnut["entities"] > 0
    meta = json.loads((tmp_path / "wnut" / "config.json").read_text())
    assert meta["scheme"] == "IOB2" and "official dev split" in meta["data_description"]
    wiki_dir = tmp_path / "wiki"
    train_and_evaluate(_tiny(str(shared_data / "ner" / "wikigold")), wiki_dir)
    meta = json.loads((wiki_dir / "config.json").read_text())
    assert meta["scheme"] == "IOB1"  # read as IOB1, trained and scored as IOB2
    vocab_tags = json.loads((wiki_dir / "vocab.json").read_text())["tags"]
    assert any(t.startswith("B-") for t in vocab_tags)
    code = cli.main(verbs.APP, verbs.VERBS, verbs.MAIN,
                    ["evaluate", "--run-dir", str(wiki_dir), "--quiet"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and set(result["per_type"]) <= {"PER", "LOC", "ORG", "MISC"}
    assert result["f1"] == pytest.approx(json.loads((wiki_dir / "metrics.json").read_text())["f1"])

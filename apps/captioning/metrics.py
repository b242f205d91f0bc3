"""Caption quality: BLEU-1..4 and CIDEr-D from ``pycocoevalcap`` (the COCO caption evaluation
code), and exact-caption accuracy.

Both the references and the generated captions are lower-cased and split into words by
:func:`apps.captioning.vocab.metric_tokens` (punctuation dropped) — the role the PTB tokenizer
plays in the COCO toolkit, which needs Java. CIDEr's document frequencies come from the
references of the images being evaluated, as in the COCO evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

from apps.captioning.vocab import metric_tokens


def caption_scores(
    references: Sequence[Sequence[str]], hypotheses: Sequence[str]
) -> dict[str, float]:
    """Corpus BLEU-1..4 and CIDEr-D of ``hypotheses`` against all ``references`` per image.

    Args:
        references: per image, its reference captions (at least one).
        hypotheses: per image, the generated caption.

    Returns:
        ``{"bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider"}`` (BLEU in [0, 1]; CIDEr-D is
        x10-scaled as in the COCO toolkit, 0..10).

    Example:
        >>> caption_scores([["a dog runs"]], ["a dog runs"])["bleu_1"]
        1.0
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    if len(references) != len(hypotheses):
        raise ValueError(
            f"one hypothesis per image: got {len(hypotheses)} for {len(references)} images"
        )
    if not hypotheses:
        raise ValueError("no captions to score")
    gts, res = {}, {}
    for i, (refs, hyp) in enumerate(zip(references, hypotheses)):
        if not refs:
            raise ValueError(f"image {i} has no reference caption")
        gts[i] = [" ".join(metric_tokens(r)) for r in refs]
        res[i] = [" ".join(metric_tokens(hyp))]
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    scores = {f"bleu_{n + 1}": float(b) for n, b in enumerate(bleu)}
    scores["cider"] = float(cider)
    return scores


def exact_accuracy(references: Sequence[Sequence[Sequence[str]]],
                   hypotheses: Sequence[Sequence[str]]) -> float:  # fmt: skip
    """The fraction of images whose generated tokens equal one of their references' tokens.

    Args:
        references: per image, the token lists of its references.
        hypotheses: per image, the generated token list.
    """
    if len(references) != len(hypotheses):
        raise ValueError("one hypothesis per image")
    if not hypotheses:
        return 0.0
    hits = sum(any(list(h) == list(r) for r in refs) for refs, h in zip(references, hypotheses))
    return hits / len(hypotheses)

"""BLEU-4 and ROUGE-1/2/L of generated replies against the references, for English and Chinese alike.

Both texts are split into words by jieba (Chinese words; English words and punctuation as separate tokens;
whitespace dropped; case kept), so one tokenization serves every language.
- BLEU-4: nltk's `sentence_bleu` with uniform 1-4-gram weights and smoothing method 3 (NIST geometric
  sequence, Chen & Cherry 2014): an n-gram order with no match counts as 1/(2^k · candidates) for the k-th
  such order instead of zeroing the score. So an exact match of four or more words scores 100, and an exact
  match of two words scores 100 · (1 · 1 · 1/2 · 1/4)^(1/4) ≈ 59.46 (it has no 3- or 4-grams to match).
- ROUGE-1/2/L: Google's `rouge-score` F-measure (L: longest common subsequence), on the same words, no stemming.
Scores are 0-100 and averaged over rows. An empty reply or reference scores 0 (100 when both are empty).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from engine.errors import ConfigError

METRIC_KEYS = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")
_ROUGE_TYPES = {"rouge-1": "rouge1", "rouge-2": "rouge2", "rouge-l": "rougeL"}
INSTALL_HINT = 'pip install "llm-studio[metrics]"'


def require_metric_packages() -> None:
    """Raise a ConfigError naming the install command when nltk, jieba or rouge-score is missing."""
    import importlib.util

    missing = [pkg for pkg, module in (("nltk", "nltk"), ("jieba", "jieba"), ("rouge-score", "rouge_score"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError("metrics_missing", packages=", ".join(missing), install=INSTALL_HINT)


def tokenize(text: str) -> list[str]:
    """Words of `text` by jieba (whitespace dropped, case kept)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # it announces loading its dictionary on every first use
    return [token for token in jieba.lcut(text) if token.strip()]


def score_pair(prediction: str, reference: str, scorer: Any = None) -> dict[str, float]:
    """BLEU-4 and ROUGE-1/2/L (0-100) of one reply against its reference."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    pred, ref = tokenize(prediction), tokenize(reference)
    if not pred or not ref:
        value = 100.0 if not pred and not ref else 0.0
        return dict.fromkeys(METRIC_KEYS, value)
    with warnings.catch_warnings():  # nltk warns about every missing n-gram order, which the smoothing handles
        warnings.simplefilter("ignore")
        bleu = sentence_bleu([ref], pred, smoothing_function=SmoothingFunction().method3)
    scorer = scorer or rouge_scorer()
    rouge = scorer.score(" ".join(ref), " ".join(pred))  # rouge-score takes (target, prediction)
    scores = {"bleu-4": bleu * 100}
    scores.update({key: rouge[name].fmeasure * 100 for key, name in _ROUGE_TYPES.items()})
    return scores


def rouge_scorer() -> Any:
    """A rouge-score scorer for ROUGE-1/2/L on our words (the joined words are split again on spaces)."""
    from rouge_score.rouge_scorer import RougeScorer

    class _Spaces:
        def tokenize(self, text: str) -> list[str]:
            return text.split(" ")

    return RougeScorer(list(_ROUGE_TYPES.values()), use_stemmer=False, tokenizer=_Spaces())


def score_corpus(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Each metric averaged over the rows (0-100, rounded to 4 places); all 0 for no rows."""
    totals = dict.fromkeys(METRIC_KEYS, 0.0)
    scorer = rouge_scorer()
    for prediction, reference in zip(predictions, references, strict=True):
        for key, value in score_pair(prediction, reference, scorer).items():
            totals[key] += value
    count = max(len(predictions), 1)
    return {key: round(total / count, 4) for key, total in totals.items()}

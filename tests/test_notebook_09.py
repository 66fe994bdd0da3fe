"""End to end for notebook 09: planted mistakes cost their exercise's points, with a hint.

The student notebook, filled with the solution code, gets one typical mistake (COURSE.md's list for CLIP)
in the exercises whose mistakes still leave a trainable model, and is graded once through
`transformer-course check`. The checks are tested mistake by mistake in test_grading_clip.py.
"""
from __future__ import annotations

import pytest

from notebook_tools import assert_lost_with_hints, by_id, check, fill_student, planted

pytestmark = pytest.mark.slow

NAME = "09_clip"


def _replace(grade_id: str, old: str, new: str) -> str:
    return planted(NAME, grade_id, old, new)


def test_clip_mistakes_lose_their_points_with_hints(tmp_path):
    wrong = {
        # patches flattened as (p1, p2, c) against a conv weight laid out as (c, p1, p2)
        "patchify": _replace("patchify", ".permute(0, 2, 4, 1, 3, 5)", ".permute(0, 2, 4, 3, 5, 1)"),
        # text features read at the last (padding) position
        "text_forward": _replace("text_forward", "return x[torch.arange(B, device=ids.device), eot]", "return x[:, -1]"),
        # one direction of the symmetric loss only
        "clip_loss": _replace("clip_loss", "return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2",
                              "return F.cross_entropy(logits, labels)"),
        # the mean of the templates not normalised again
        "class_embeddings": _replace("class_embeddings", "rows.append(F.normalize(emb.mean(dim=0), dim=-1))",
                                     "rows.append(emb.mean(dim=0))"),
        # the columns ranked instead of the rows
        "recall_at_k": _replace("recall_at_k", "similarity.topk(k, dim=1)", "similarity.T.topk(k, dim=1)"),
    }
    result = by_id(check(fill_student(NAME, tmp_path, replace=wrong)))
    expected_words = {
        "patchify_test": "(row, column, channel)",
        "text_forward_test": "at the last position",
        "clip_loss_test": "only one direction",
        "class_embeddings_test": "normalise the mean again",
        "recall_at_k_test": "this looks like the columns were ranked",
    }
    assert_lost_with_hints(result, expected_words)
    for grade_id in ("vit_forward_test", "copy_to_hf_test"):
        assert result[grade_id]["passed"], (grade_id, result[grade_id]["message"])

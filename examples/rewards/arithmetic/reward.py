"""A verifiable format-and-arithmetic reward: the completion must put its answer in <answer>...</answer>, and the
number there must be the dataset's `answer` column. Format alone earns a little, so a model first learns the format
and then the arithmetic."""

import re

_ANSWER = re.compile(r"<answer>\s*(-?\d+(?:\.\d+)?)\s*</answer>")
FORMAT_ONLY = 0.2


def _text(completion):
    # Plain text, or a conversation whose last message is the model's.
    return completion if isinstance(completion, str) else completion[-1]["content"]


def score(prompts, completions, answer, **_):
    scores = []
    for completion, expected in zip(completions, answer):
        found = _ANSWER.search(_text(completion))
        if found is None:
            scores.append(0.0)
        elif float(found.group(1)) == float(expected):
            scores.append(1.0)
        else:
            scores.append(FORMAT_ONLY)
    return scores

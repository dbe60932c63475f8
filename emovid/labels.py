"""Emotion class names and the aliases that map dataset folder names onto them."""

from __future__ import annotations

#: Classes of the shipped model, in output order. FER+ ``happiness`` is our ``joy``.
EMOTIONS: tuple[str, ...] = ("neutral", "joy", "surprise", "sadness", "anger", "disgust", "fear")

#: FER+ ``label.csv`` vote columns, in file order (after file name and face box).
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger",
    "disgust", "fear", "contempt", "unknown", "NF",
)

# Folder names seen in the original system and common datasets, mapped to our classes.
_ALIASES: dict[str, str] = {
    "happiness": "joy", "happy": "joy", "joy": "joy",
    "surprised": "surprise", "surprise": "surprise",
    "sad": "sadness", "sadness": "sadness",
    "angry": "anger", "anger": "anger",
    "disgusted": "disgust", "disgust": "disgust",
    "fearful": "fear", "afraid": "fear", "fear": "fear",
    "neutral": "neutral",
}


def canonical_emotion(name: str) -> str:
    """Map a dataset's class name (``surprised``, ``Happy``...) onto one of ``EMOTIONS``.

    Raises:
        ValueError: if the name is not a known emotion.
    """
    key = name.strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown emotion class {name!r}; expected one of {sorted(_ALIASES)}")
    return _ALIASES[key]

"""Emotion class names and the aliases that map dataset folder names onto them."""

from __future__ import annotations

#: Classes of the shipped model, in output order. FER+ ``happiness`` is our ``joy``.
EMOTIONS: tuple[str, ...] = ("neutral", "joy", "surprise", "sadness", "anger", "disgust", "fear")

#: One colour per emotion (hex), shared by the report's plots and the rendered videos.
EMOTION_COLOURS: dict[str, str] = {"neutral": "#9e9e9e", "joy": "#f4b400", "surprise": "#ab47bc",
                                   "sadness": "#4285f4", "anger": "#db4437", "disgust": "#0f9d58", "fear": "#ff7043"}

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

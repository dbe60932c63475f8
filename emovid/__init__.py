"""emovid: folders of videos and photos -> per-timestamp, per-face emotion tables (Parquet), on Ray.

Heavy parts (TensorFlow, Ray) load on first use, so ``import emovid`` and ``emovid --help`` are quick.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "analyze": "emovid.api",
    "read_results": "emovid.results",
    "read_manifest": "emovid.manifest",
    "EmotionClassifier": "emovid.emotions",
    "FaceDetector": "emovid.faces",
    "FaceDetections": "emovid.faces",
    "AnalyzeConfig": "emovid.config",
    "VideoAnalyzer": "emovid.pipeline",
    "VideoTask": "emovid.pipeline",
    "EmovidError": "emovid.errors",
    "ModelError": "emovid.errors",
    "VideoError": "emovid.errors",
    "OutputError": "emovid.errors",
    "EMOTIONS": "emovid.labels",
    "smooth": "emovid.timelines",
    "track_timelines": "emovid.timelines",
    "track_summary": "emovid.timelines",
    "person_summary": "emovid.timelines",
    "resample": "emovid.timelines",
    "emotion_shares": "emovid.timelines",
    "build_report": "emovid.report",
    "render": "emovid.rendering",
    "ImageError": "emovid.errors",
    "FaceTracker": "emovid.people.tracker",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emovid' has no attribute {name!r}")

"""emovid: folders of videos and photos -> per-timestamp, per-face emotion tables (Parquet), on Ray.

Heavy parts (TensorFlow, Ray) load on first use, so ``import emovid`` and ``emovid --help`` are quick.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Installed, ``training/`` and ``models/`` are emovid.training and emovid.models (pyproject maps
# them). Run from a source tree that is not installed (a Ray job's working_dir), they sit beside
# this package: look for them there too.
_beside = __import__("pathlib").Path(__file__).resolve().parent.parent
if (_beside / "training" / "__init__.py").is_file() and (_beside / "models").is_dir():
    __path__.append(str(_beside))

_LAZY = {
    "analyze": "emovid.api",
    "read_results": "emovid.store.results",
    "read_manifest": "emovid.store.manifest",
    "EmotionClassifier": "emovid.classify.emotions",
    "FaceDetector": "emovid.detect.faces",
    "FaceDetections": "emovid.detect.faces",
    "AnalyzeConfig": "emovid.config",
    "VideoAnalyzer": "emovid.run.pipeline",
    "VideoTask": "emovid.run.tasks",
    "RunOptions": "emovid.config",
    "EmovidError": "emovid.errors",
    "ModelError": "emovid.errors",
    "VideoError": "emovid.errors",
    "OutputError": "emovid.errors",
    "EMOTIONS": "emovid.classify.labels",
    "smooth": "emovid.report.timelines",
    "track_timelines": "emovid.report.timelines",
    "track_summary": "emovid.report.timelines",
    "person_summary": "emovid.report.timelines",
    "resample": "emovid.report.timelines",
    "episodes": "emovid.report.analytics",
    "with_baseline": "emovid.report.analytics",
    "emotion_shares": "emovid.report.timelines",
    "build_report": "emovid.report.page",
    "render": "emovid.report.render",
    "ImageError": "emovid.errors",
    "FaceTracker": "emovid.people.tracker",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emovid' has no attribute {name!r}")

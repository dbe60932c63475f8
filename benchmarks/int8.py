"""Groundwork for int8 inference: the shipped CNN quantised with onnxruntime's static
quantisation, side by side with its fp32 graph: crops/s and accuracy on the same crops.

Calibration uses FER+ *training* crops (never an evaluation set). The int8 graph runs through
the product's own post-processing (temperature, prior correction, mirror pass) by swapping the
classifier's onnxruntime session, so the accuracy columns compare like with like.

    python benchmarks/int8.py ../shared [--calibration 512]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crossdomain import standard_sets  # noqa: E402

from emovid.assets import model_path  # noqa: E402
from emovid.classify.emotions import EmotionClassifier, to_model_input  # noqa: E402
from emovid.classify.model_file import read_onnx  # noqa: E402
from emovid.training.evaluate import load_labelled  # noqa: E402


def quantised(graph: bytes, crops: np.ndarray, input_name: str, folder: Path, per_channel: bool = True) -> bytes:
    """``graph`` with int8 weights and activations (QDQ), calibrated on ``crops``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Crops(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(np.array_split(crops, max(len(crops) // 64, 1)))

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    source, prepared, target = folder / "fp32.onnx", folder / "prepared.onnx", folder / "int8.onnx"
    source.write_bytes(graph)
    quant_pre_process(str(source), str(prepared))
    quantize_static(str(prepared), str(target), Crops(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return target.read_bytes()


def with_graph(classifier: EmotionClassifier, graph: bytes, threads: int) -> EmotionClassifier:
    """``classifier`` running ``graph`` instead (same post-processing)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    classifier._network._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    return classifier


def rate(classifier: EmotionClassifier, crops: np.ndarray, batch: int = 256) -> float:
    classifier.predict_proba(crops[:batch], batch_size=batch)
    start = time.perf_counter()
    classifier.predict_proba(crops, batch_size=batch)
    return len(crops) / (time.perf_counter() - start)


def scores(classifier: EmotionClassifier, faces) -> tuple[float, float]:
    """Accuracy against the majority label and mean per-class recall."""
    guess = classifier.predict_proba(faces.images).argmax(axis=1)
    truth = faces.majority
    recalls = [np.mean(guess[truth == c] == c) for c in np.unique(truth)]
    return float(np.mean(guess == truth)), float(np.mean(recalls))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", type=Path, help="the shared data folder (../shared)")
    parser.add_argument("--calibration", type=int, default=512, help="FER+ training crops to calibrate on")
    args = parser.parse_args(argv)
    model = model_path(None)
    fp32 = EmotionClassifier.load(model, num_threads=1)
    size, margin = fp32.input_size, fp32.info.crop_margin
    train = load_labelled(args.shared / "data" / "ferplus" / "FER2013Train", size, margin)
    pick = np.random.default_rng(0).choice(len(train.images), args.calibration, replace=False)
    crops = to_model_input(train.images[pick], size)  # what the session is fed
    input_name = fp32._network._input
    with tempfile.TemporaryDirectory() as tmp:
        int8_graph = quantised(read_onnx(model), crops, input_name, Path(tmp))
    sets = [(s.name, s.load(size, margin)) for s in standard_sets(args.shared) if s.available()]
    timing = np.concatenate([faces.images for _, faces in sets])[:2048]
    print(f"\nint8 vs fp32, {platform.processor() or platform.machine()}, calibrated on {args.calibration} FER+ "
          f"training crops\n")
    print("| graph | threads | crops/s (batch 256) | " + " | ".join(f"{n}: acc / mean recall" for n, _ in sets) + " |")
    print("|---" * (3 + len(sets)) + "|")
    for name, graph in (("fp32", read_onnx(model)), ("int8 (QDQ, per channel)", int8_graph)):
        for mirror in (True, False):  # the mirror pass: the network run again on flipped crops, averaged
            for threads in (1, 2):
                clf = with_graph(EmotionClassifier.load(model, num_threads=threads), graph, threads)
                clf._network._flip = mirror and clf._network._flip
                cells = ([f"{a:.1%} / {r:.3f}" for a, r in (scores(clf, faces) for _, faces in sets)] if threads == 1
                         else ["" for _ in sets])
                label = name + ("" if mirror else ", no mirror pass")
                print(f"| {label} | {threads} | {rate(clf, timing):.0f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

import shutil
import socket
import zipfile

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from emovid.classify.emotions import EmotionClassifier, to_model_input
from emovid.errors import ModelError
from emovid.classify.labels import EMOTIONS
from emovid.classify.model_file import ModelInfo, read_model_info, write_model_info
from tests.helpers import FERPLUS, shared_video


@pytest.fixture(scope="module")
def classifier():
    return EmotionClassifier.load()


def test_bundled_model_loads_with_its_classes(classifier):
    assert classifier.classes == EMOTIONS
    assert classifier.input_size == 48
    assert "emovid" in classifier.path.parent.as_posix() or classifier.path.parent.name == "models"


def test_bundled_model_loads_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert EmotionClassifier.load().predict_proba([np.zeros((48, 48), np.uint8)]).shape == (1, 7)


@pytest.mark.parametrize("name", ["single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg"])
def test_predict_proba_on_real_face_photos(classifier, name):
    from emovid.detect.faces import FaceDetector, crop_faces

    image = cv2.imread(str(shared_video(name)))
    faces = FaceDetector().detect(image).largest()
    crops = crop_faces(image, faces, classifier.info.crop_margin, classifier.input_size)
    bgr_crop = image[int(faces.boxes[0, 1]):, int(faces.boxes[0, 0]):][:200, :200]
    probs = classifier.predict_proba([crops[0], bgr_crop])
    assert probs.shape == (2, len(EMOTIONS)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (probs >= 0).all()


def test_happy_photo_is_joy(classifier):
    from emovid.detect.faces import FaceDetector, crop_faces

    image = cv2.imread(str(shared_video("0-f15-hao-ph.jpg")))  # posed happy, open mouth
    crop = crop_faces(image, FaceDetector().detect(image).largest(), classifier.info.crop_margin, 48)
    assert classifier.classes[int(classifier.predict_proba(crop).argmax())] == "joy"


def test_batching_does_not_change_results(classifier):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, (37, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(classifier.predict_proba(faces, batch_size=5), classifier.predict_proba(faces, batch_size=64),
                               atol=1e-5)
    assert classifier.predict_proba([]).shape == (0, 7)


def test_graph_is_traced_once_at_load(small_model_file):
    # a fresh classifier: the first video must not pay for tracing, and no batch size retraces
    clf = EmotionClassifier.load(small_model_file)
    assert clf.backend == "tensorflow"  # no ONNX graph inside
    assert clf._network.graph.experimental_get_tracing_count() == 1
    for n in (1, 7, 300):
        clf.predict_proba(np.zeros((n, 48, 48), np.uint8))
    assert clf._network.graph.experimental_get_tracing_count() == 1


def test_onnxruntime_and_tensorflow_agree_on_real_faces(classifier):
    """The default model runs in onnxruntime from the ONNX graph in its file; TensorFlow runs the
    Keras network of the same file: equal to float rounding, on real crops and their mirror."""
    from emovid.training.evaluate import load_labelled

    if not (FERPLUS / "FER2013Valid").is_dir():
        pytest.skip(f"FER+ Valid not found under {FERPLUS}")
    faces = load_labelled(FERPLUS / "FER2013Valid", 48, 0.0).images[:300]
    classifier = EmotionClassifier.load(precision="fp32")
    on_tf = EmotionClassifier.load(backend="tensorflow")
    assert (classifier.backend, on_tf.backend) == ("onnxruntime", "tensorflow") and on_tf.info.flip_average
    # On CPUs with native bf16, TensorFlow runs the network in bf16 (logits move by a few hundredths)
    bf16 = on_tf.bf16
    np.testing.assert_allclose(classifier.predict_logits(faces), on_tf.predict_logits(faces), atol=0.15 if bf16 else 1e-4)
    agree = (classifier.predict_proba(faces).argmax(1) == on_tf.predict_proba(faces).argmax(1)).mean()
    assert agree > (0.98 if bf16 else 0.995), agree


def test_classifier_backend_choice(small_model_file, monkeypatch):
    from emovid.assets import DEFAULT_MODEL_NAME, bundled
    from emovid.classify.emotions import classifier_backend

    assert classifier_backend(bundled(DEFAULT_MODEL_NAME)) == "onnxruntime"
    assert classifier_backend(small_model_file) == "tensorflow"  # no graph inside
    with pytest.raises(ValueError, match="classifier backend"):
        classifier_backend(bundled(DEFAULT_MODEL_NAME), "cuda")
    with pytest.raises(ModelError, match="no ONNX graph inside"):
        EmotionClassifier.load(small_model_file, backend="onnxruntime")
    monkeypatch.setenv("EMOVID_CLASSIFIER", "tensorflow")
    assert classifier_backend(bundled(DEFAULT_MODEL_NAME)) == "tensorflow"


def _sample_video_crops(size: int, margin: float) -> np.ndarray:
    """Face crops of the repo's sample video (every 6th frame) and test photos: real faces."""
    from emovid.detect.faces import FaceDetector, crop_faces
    from emovid.media.video import VideoReader

    detector, crops = FaceDetector(), []
    with VideoReader(shared_video("WolfgangLanger_Pexels.mp4"), sample_fps=4) as reader:
        images = [frame.image for frame in reader.frames()]
    images += [cv2.imread(str(shared_video(n))) for n in ("multi_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg",
                                                          "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg")]
    for image in images:
        crops.extend(crop_faces(image, detector.detect(image), margin, size))
    return np.stack(crops)


def test_int8_graph_runs_and_agrees_with_fp32_on_real_faces():
    """The shipped file carries an int8 graph beside the fp32 one; on real faces (the sample
    video, posed photos) it gives the same emotion almost always, probabilities within a few
    hundredths: quantisation, not a different model."""
    fp32 = EmotionClassifier.load(precision="fp32", num_threads=1)
    int8 = EmotionClassifier.load(precision="int8", num_threads=1)
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    crops = _sample_video_crops(fp32.input_size, fp32.info.crop_margin)
    assert len(crops) > 70
    p32, p8 = fp32.predict_proba(crops), int8.predict_proba(crops)
    assert not np.array_equal(p32, p8)  # another graph really ran
    assert (p32.argmax(1) == p8.argmax(1)).mean() >= 0.95
    assert np.abs(p32 - p8).max(axis=1).mean() < 0.03


def test_precision_resolution(small_model_file):
    from emovid.assets import DEFAULT_MODEL_NAME, bundled
    from emovid.classify.emotions import int8_speedup, resolve_precision
    from emovid.classify.model_file import model_digest, onnx_precisions

    shipped = bundled(DEFAULT_MODEL_NAME)
    assert onnx_precisions(shipped) == ("fp32", "int8") and onnx_precisions(small_model_file) == ()
    assert resolve_precision(shipped, "fp32") == "fp32" and resolve_precision(shipped, "int8") == "int8"
    faster = int8_speedup(shipped, model_digest(shipped)) >= 1.2
    assert resolve_precision(shipped) == ("int8" if faster else "fp32")
    assert resolve_precision(shipped, use_gpu=True) == "fp32"  # GPUs run the float graph
    assert resolve_precision(shipped, backend="tensorflow") == "fp32"
    assert resolve_precision(small_model_file) == "fp32"  # nothing to choose from
    for model, gpu, message in ((small_model_file, False, "no int8 graph"), (shipped, True, "CPU workers only")):
        with pytest.raises(ModelError, match=message):
            resolve_precision(model, "int8", use_gpu=gpu)
    with pytest.raises(ValueError, match="precision"):
        resolve_precision(shipped, "int4")
    with pytest.raises(ModelError, match="onnxruntime only"):
        EmotionClassifier.load(backend="tensorflow", precision="int8")


@pytest.mark.parametrize("faces", [[np.zeros((4, 4, 2), np.uint8)], [np.zeros(0, np.uint8)]])
def test_bad_crops_raise(faces):
    with pytest.raises(ValueError, match="faces\\[0\\]"):
        to_model_input(faces, 48)


def test_model_with_wrong_classes_is_rejected(classifier, tmp_path):
    path = tmp_path / "wrong.keras"
    shutil.copy(classifier.path, path)
    info = read_model_info(path)
    write_model_info(path, ModelInfo(info.name, info.version, ("a", "b", "c"), info.input_size, info.crop_margin))
    with pytest.raises(ModelError, match="3 classes"):
        EmotionClassifier.load(path)


@pytest.mark.parametrize("content, message", [(b"not a zip", "not a .keras"), (None, "not found")])
def test_broken_model_files(tmp_path, content, message):
    path = tmp_path / "m.keras"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        EmotionClassifier.load(path)


def test_keras_file_without_emovid_metadata(tmp_path):
    path = tmp_path / "plain.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(ModelError, match="emovid.json"):
        EmotionClassifier.load(path)


def test_flip_average_makes_predictions_mirror_invariant(classifier, tmp_path):
    from dataclasses import replace

    path = tmp_path / "tta.keras"
    shutil.copy(classifier.path, path)
    write_model_info(path, replace(read_model_info(path), flip_average=True))
    tta = EmotionClassifier.load(path)
    faces = np.random.default_rng(1).integers(0, 255, (4, 48, 48), dtype=np.uint8)
    # equal up to bfloat16 rounding (oneDNN's bf16 path is on where the CPU has it)
    np.testing.assert_allclose(tta.predict_proba(faces), tta.predict_proba(faces[:, :, ::-1]), atol=1e-2)


def test_models_with_code_are_refused(tmp_path):
    """safe_mode: a .keras file carrying a Python lambda is not deserialised (no code from model files)."""
    import keras

    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(7)(keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 2)(inputs)))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    write_model_info(path, ModelInfo("evil", "1", EMOTIONS, 48, 0.1))
    with pytest.raises(ModelError, match="cannot load model"):
        EmotionClassifier.load(path)


def test_the_shipped_model_loads_by_name_and_a_model_file_runs_end_to_end(small_model_file, tmp_path):
    import emovid
    from emovid.store.schema import read_metadata
    from tests.helpers import face_video

    default = EmotionClassifier.load()
    assert EmotionClassifier.load("emovid_fer7_v7").path == default.path
    with pytest.raises(ModelError, match="not found"):
        EmotionClassifier.load("emovid_fer7_v6")  # older models live in git history, not in the package
    # a model file of the user's own, on TensorFlow, through the whole pipeline
    manifest = emovid.analyze(face_video(tmp_path / "face.mp4", n_frames=6), tmp_path / "out",
                              model=small_model_file, in_process=True, progress=False)
    assert list(manifest["status"]) == ["ok"] and manifest["faces"][0] > 0
    meta = read_metadata(pq.read_schema(tmp_path / "out" / "face.mp4.parquet"))
    assert meta["settings"]["model"] == "emovid-small:1"  # the named model did the work
    assert meta["operating_point"]["logit_offsets"] == [0.2, -0.1, 0.0, 0.1, 0.0, -0.2, 0.3]
    assert meta["classifier_runtime"]["backend"] == "tensorflow" and not meta["classifier_runtime"]["gpu"]
    assert "classifier_backend" not in meta["settings"]  # runtimes agree to 1e-6: not a result setting


@pytest.mark.skipif(not (FERPLUS / "FER2013Valid").is_dir(), reason=f"FER+ Valid not found under {FERPLUS}")
def test_default_model_on_ferplus_valid(classifier):
    """The shipped model reproduces its model card on FER+ Valid (82.7%, every class recalled), no class collapsed."""
    from emovid.training.evaluate import load_labelled

    faces = load_labelled(FERPLUS / "FER2013Valid", classifier.input_size, classifier.info.crop_margin)
    predicted = classifier.predict_proba(faces.images).argmax(axis=1)
    accuracy = np.mean(predicted == faces.majority)
    recall = [np.mean(predicted[faces.majority == c] == c) for c in range(len(EMOTIONS))
              if (faces.majority == c).any()]
    assert accuracy >= 0.825 and min(recall) > 0.3, (accuracy, recall)


@pytest.mark.parametrize("value, expected", [
    (None, None), ("ferplus", 0.0), ("Balanced", 1.0), ("0.3", 0.3), (0.5, 0.5), (0, 0.0),
    ("uniform", ValueError), (-0.1, ValueError), ("2", ValueError), (float("nan"), ValueError), (True, ValueError),
])
def test_parse_prior(value, expected):
    from emovid.config import parse_prior

    if expected is ValueError:
        with pytest.raises(ValueError, match="prior"):
            parse_prior(value)
    else:
        assert parse_prior(value) == expected


def test_prior_and_temperature_set_the_operating_point(classifier, tmp_path):
    from dataclasses import replace

    faces = np.random.default_rng(2).integers(0, 255, (16, 48, 48), dtype=np.uint8)
    native = EmotionClassifier.load(None, 0.0).predict_proba(faces)
    balanced = EmotionClassifier.load(None, 1.0).predict_proba(faces)
    rare = [EMOTIONS.index("disgust"), EMOTIONS.index("fear")]
    # undoing the FER+ prior moves mass from neutral to the rare classes on every face
    assert (balanced[:, rare].sum(axis=1) > native[:, rare].sum(axis=1)).all()
    assert (balanced[:, EMOTIONS.index("neutral")] < native[:, EMOTIONS.index("neutral")]).all()
    # the default is the model's declared operating point
    np.testing.assert_allclose(classifier.predict_proba(faces),
                               EmotionClassifier.load(None, classifier.info.prior_tau).predict_proba(faces), atol=1e-6)
    path = tmp_path / "sharp.keras"
    shutil.copy(classifier.path, path)
    write_model_info(path, replace(read_model_info(path), temperature=0.5))
    sharp = EmotionClassifier.load(path).predict_proba(faces)
    assert (sharp.argmax(axis=1) == classifier.predict_proba(faces).argmax(axis=1)).all()
    assert (sharp.max(axis=1) > classifier.predict_proba(faces).max(axis=1)).all()


def test_prior_needs_a_declared_class_prior(classifier, tmp_path):
    from dataclasses import replace

    path = tmp_path / "old.keras"
    shutil.copy(classifier.path, path)
    write_model_info(path, replace(read_model_info(path), class_prior=None, prior_tau=None))
    EmotionClassifier.load(path)  # the default (its logit offsets) still works
    with pytest.raises(ModelError, match="class_prior"):
        EmotionClassifier.load(path, 0.5)
    with pytest.raises(ValueError, match="temperature"):
        replace(read_model_info(path), temperature=0)

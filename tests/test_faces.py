from contextlib import nullcontext as does_not_raise

import cv2
import numpy as np
import pytest

from emovid.detect.faces import FaceDetections, FaceDetector, crop_faces
from tests.helpers import DATA, shared_video


def detections(boxes, scores=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.full(len(boxes), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
    return FaceDetections(boxes, scores, np.zeros((len(boxes), 5, 2), np.float32))


@pytest.mark.parametrize(
    "boxes, scores, landmarks, expectation",
    [
        (np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros((2, 5, 2), np.float32), does_not_raise()),
        (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32), does_not_raise()),
        (np.zeros((2, 3), np.float32), np.zeros(2, np.float32), np.zeros((2, 5, 2), np.float32), pytest.raises(ValueError, match="boxes")),
        (np.zeros((2, 4), np.float32), np.zeros(3, np.float32), np.zeros((2, 5, 2), np.float32), pytest.raises(ValueError, match="scores")),
        (np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros((2, 4, 2), np.float32), pytest.raises(ValueError, match="landmarks")),
        ([[0, 0, 1, 1]], np.zeros(1, np.float32), np.zeros((1, 5, 2), np.float32), pytest.raises(ValueError, match="boxes")),
    ],
)
def test_face_detections_validates_shapes(boxes, scores, landmarks, expectation):
    with expectation:
        FaceDetections(boxes, scores, landmarks)


def test_empty_detections_are_valid_and_filterable():
    empty = FaceDetections.empty()
    assert len(empty) == 0
    assert empty == FaceDetections.empty()
    assert len(empty.largest()) == 0
    assert len(empty[np.zeros(0, bool)]) == 0


def test_indexing_and_largest():
    faces = detections([[0, 0, 10, 10], [5, 5, 40, 30], [1, 1, 20, 20]])
    assert len(faces[faces.boxes[:, 2] > 15]) == 2
    np.testing.assert_array_equal(faces.largest().boxes, [[5, 5, 40, 30]])
    assert len(faces[1]) == 1


def test_from_yunet_maps_boxes_back_to_frame_pixels():
    raw = np.zeros((1, 15), np.float32)
    raw[0, :4] = [10, 20, 30, 40]
    raw[0, 4:14] = np.arange(10)
    raw[0, 14] = 0.8
    faces = FaceDetections.from_yunet(raw, scale=0.5)
    np.testing.assert_allclose(faces.boxes, [[20, 40, 60, 80]])
    np.testing.assert_allclose(faces.landmarks[0, 1], [4, 6])
    np.testing.assert_allclose(faces.scores, [0.8])
    assert len(FaceDetections.from_yunet(None)) == 0


def test_crop_faces_shape_dtype_and_padding():
    frame = np.full((100, 120, 3), 255, np.uint8)
    faces = detections([[0, 0, 50, 50], [60, 40, 40, 60]])
    crops = crop_faces(frame, faces, margin=0.2, size=48)
    assert crops.shape == (2, 48, 48) and crops.dtype == np.uint8
    assert (crops == 255).all()  # parts outside the frame replicate the border, no black bars
    assert crop_faces(frame, FaceDetections.empty(), 0.2, 48).shape == (0, 48, 48)


@pytest.mark.parametrize("box", [[30, 20, 40, 40], [-10, -6, 40, 40], [100, 70, 40, 40], [200, 150, 20, 20]])
def test_square_crop_equals_resampling_with_replicated_border(box):
    import cv2

    from emovid.detect.faces import crop_transforms

    frame = np.random.default_rng(0).integers(0, 256, (100, 120), dtype=np.uint8)
    faces = detections([box])
    (m,), (side,) = crop_transforms(faces, 0.0)
    reference = cv2.warpAffine(frame, m, (int(side), int(side)), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)  # integer shift here: no interpolation
    np.testing.assert_array_equal(crop_faces(frame, faces, margin=0.0, size=int(side))[0], reference)


def test_crop_is_centred_on_the_box():
    frame = np.zeros((200, 200), np.uint8)
    frame[80:120, 80:120] = 255  # a bright 40 px square
    crop = crop_faces(frame, detections([[80, 80, 40, 40]]), margin=0.0, size=40)[0]
    assert crop.mean() > 240


def test_align_levels_tilted_eyes():
    faces = detections([[40, 40, 60, 60]])
    faces.landmarks[0, 0] = [55, 60]  # right eye
    faces.landmarks[0, 1] = [85, 75]  # left eye, lower: head tilted
    frame = np.zeros((160, 160), np.uint8)
    cv2.line(frame, (55, 60), (85, 75), 255, 3)
    crop = crop_faces(frame, faces, margin=0.0, size=60, align=True)[0]
    rows = np.flatnonzero(crop.max(axis=1) > 128)
    assert rows.max() - rows.min() <= 6  # the eye line is horizontal after alignment


@pytest.mark.parametrize("kwargs", [{"score_threshold": 0}, {"score_threshold": 1.5}, {"min_face": -1}, {"max_side": 10}])
def test_detector_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        FaceDetector(**kwargs)


def test_detector_finds_the_five_faces_of_multi_face_photo():
    image = cv2.imread(str(shared_video("multi_face.jpg")))
    faces = FaceDetector().detect(image)
    assert len(faces) == 5
    assert (faces.scores > 0.7).all()
    # boxes lie inside the photo, in its own pixels (detection ran on a downscaled copy)
    assert (faces.boxes[:, 0] >= 0).all() and (faces.boxes[:, 0] + faces.boxes[:, 2] <= image.shape[1] + 2).all()


def test_detector_downscaling_keeps_boxes_in_original_pixels():
    image = cv2.imread(str(shared_video("single_face.jpg")))
    big = cv2.resize(image, None, fx=2, fy=2)
    small_faces = FaceDetector(max_side=4000).detect(image)
    big_faces = FaceDetector(max_side=max(image.shape[:2])).detect(big)
    assert len(small_faces) == len(big_faces) == 1
    np.testing.assert_allclose(big_faces.boxes / 2, small_faces.boxes, atol=6)


def test_min_face_filters_small_faces():
    image = cv2.imread(str(shared_video("multi_face.jpg")))
    assert len(FaceDetector(min_face=110).detect(image)) < 5


@pytest.mark.parametrize("min_face, max_side, size, expected", [
    (20, None, (640, 360), 0.5),      # a 20 px face is 10 px at 320 px
    (20, None, (1920, 1080), 0.5),    # HD keeps enough resolution for 20 px faces
    (60, None, (1920, 1080), 1 / 6),  # bigger faces only: 320 px is enough
    (20, None, (200, 100), 1.0),      # never enlarged
    (20, 640, (1280, 720), 0.5),      # explicit size wins
])
def test_detection_scale_follows_min_face(min_face, max_side, size, expected):
    assert FaceDetector(min_face=min_face, max_side=max_side).detection_scale(*size) == pytest.approx(expected)


@pytest.mark.parametrize("align", [False, True])
def test_colour_and_gray_frames_give_the_same_crops(align):
    frame = cv2.imread(str(shared_video("multi_face.jpg")))
    faces = FaceDetector().detect(frame)
    # boxes reaching past every edge, and one wholly outside, exercise the border filling
    h, w = frame.shape[:2]
    edges = detections([[-30, -30, 80, 80], [w - 50, h - 50, 90, 90], [w + 10, 10, 40, 40]])
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    for found in (faces, edges):
        np.testing.assert_array_equal(crop_faces(frame, found, 0.2, 48, align), crop_faces(gray, found, 0.2, 48, align))
    assert crop_faces(frame, FaceDetections.empty(), 0.2, 48).shape == (0, 48, 48)


@pytest.mark.parametrize("align", [False, True])
def test_crops_of_hd_faces_match_one_area_pass(align):
    """An HD face (over 1000 px with its margin) is averaged in whole k x k blocks before the area
    pass: within 1 grey level of one area pass over the centred square whose side is a multiple
    of k, and on average within 1 grey level of one pass over the whole planned square."""
    from emovid.detect.faces import _square_patch, crop_transforms
    from emovid.media.thumbnails import block_size

    photo = cv2.imread(str(DATA / "single_face.jpg"))
    scale = 800 / FaceDetector().detect(photo).boxes[0, 2]  # the face 800 px wide: a close-up in 1080p
    frame = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    found = FaceDetector().detect(frame).largest()
    (m,), (side,) = crop_transforms(found, 0.2, align)
    side = int(side)
    k = block_size((side, side), (48, 48))
    assert k >= 2  # the block path is taken

    def one_pass(square_side, shift):
        moved = m - [[0, 0, shift], [0, 0, shift]]
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if align:
            patch = cv2.warpAffine(gray, moved, (square_side,) * 2, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
        else:
            patch = _square_patch(gray, -int(round(moved[0, 2])), -int(round(moved[1, 2])), square_side)
        return cv2.resize(patch, (48, 48), interpolation=cv2.INTER_AREA).astype(int)

    crop = crop_faces(frame, found, 0.2, 48, align)[0].astype(int)
    assert np.abs(crop - one_pass(side // k * k, (side % k) // 2)).max() <= 1
    assert np.abs(crop - one_pass(side, 0)).mean() < 1.0

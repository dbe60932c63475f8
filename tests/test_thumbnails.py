import cv2
import numpy as np
import pytest

from emovid.detect.faces import FaceDetector
from emovid.media.thumbnails import downscale
from tests.helpers import DATA


@pytest.fixture(scope="module")
def photo():
    return cv2.imread(str(DATA / "multi_face.jpg"))


@pytest.mark.parametrize("factor", [2, 3])
def test_downscale_by_a_whole_ratio_is_opencvs_area_resize(photo, factor):
    image = photo[:photo.shape[0] // factor * factor, :photo.shape[1] // factor * factor]
    size = (image.shape[1] // factor, image.shape[0] // factor)
    np.testing.assert_array_equal(downscale(image, size), cv2.resize(image, size, interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("ratio", [1.09, 1.5, 1.9])
def test_downscale_under_a_ratio_of_2_is_opencvs_area_resize(photo, ratio):
    """Photos of 350 px detected at 320, videos narrower than 640 px: results as before."""
    size = (round(photo.shape[1] / ratio), round(photo.shape[0] / ratio))
    np.testing.assert_array_equal(downscale(photo, size), cv2.resize(photo, size, interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("ratio", [2.5, 3.3])
def test_downscale_by_other_ratios_stays_close_to_the_area_resize(photo, ratio):
    size = (round(photo.shape[1] / ratio), round(photo.shape[0] / ratio))
    small = downscale(photo, size)
    assert small.shape == (size[1], size[0], 3)
    assert np.abs(small.astype(int) - cv2.resize(photo, size, interpolation=cv2.INTER_AREA)).mean() < 3


def test_detection_at_a_non_whole_ratio_finds_the_same_faces(photo):
    """multi_face.jpg detected at 0.4 of its size (not a whole ratio): the same five faces as on
    an area-resized copy, boxes within 2 px at the photo's scale."""
    detector = FaceDetector(max_side=round(0.4 * max(photo.shape[:2])))
    found = detector.detect(photo)
    scale = detector.detection_scale(photo.shape[1], photo.shape[0])
    size = (round(photo.shape[1] * scale), round(photo.shape[0] * scale))
    reference = FaceDetector(max_side=max(size)).detect(cv2.resize(photo, size, interpolation=cv2.INTER_AREA))
    assert len(found) == len(reference) == 5
    order = lambda boxes: boxes[np.argsort(boxes[:, 0])]  # noqa: E731
    np.testing.assert_allclose(order(found.boxes) * scale, order(reference.boxes), atol=2)

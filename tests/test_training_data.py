
import cv2
import numpy as np
import pytest

from emovid.classify.labels import EMOTIONS
from tests.helpers import SEED, VOTES, needs_shared, write_ferplus
from emovid.training.data import DatasetError, ferplus_targets, load_class_folders, load_dataset, load_ferplus


def test_ferplus_targets_follow_the_protocol():
    usable, targets, majority = ferplus_targets(np.array(VOTES))
    assert usable.tolist() == [True, True, False, True, False, False, True]
    np.testing.assert_allclose(targets[1], [0, 0.6, 0.4, 0, 0, 0, 0])
    np.testing.assert_allclose(targets[usable].sum(axis=1), 1)
    assert majority.tolist() == [0, 1, -1, -1, -1, -1, 6]


def test_load_ferplus(tmp_path):
    faces = load_ferplus(write_ferplus(tmp_path / "split", VOTES))
    assert len(faces) == 4 and faces.images.shape == (4, 48, 48) and faces.images.dtype == np.uint8
    assert faces.targets.shape == (4, len(EMOTIONS))
    assert len(faces.evaluable()) == 3
    assert list(faces.names) == ["fer0000000.png", "fer0000001.png", "fer0000003.png", "fer0000006.png"]


def test_ferplus_root_layout_has_validation(tmp_path):
    write_ferplus(tmp_path / "FER2013Train", VOTES)
    write_ferplus(tmp_path / "FER2013Valid", VOTES[:2])
    train, valid = load_dataset(tmp_path, 48, 0.1)
    assert len(train) == 4 and len(valid) == 2


@pytest.mark.parametrize("breakage, message", [
    ("no_csv", "no label.csv"),
    ("missing_image", "missing or not a readable image"),
    ("bad_row", "expected 12 columns"),
    ("bad_number", "must be numbers"),
    ("empty_csv", "no rows"),
])
def test_ferplus_errors(tmp_path, breakage, message):
    folder = write_ferplus(tmp_path / "split", VOTES[:2])
    csv = folder / "label.csv"
    if breakage == "no_csv":
        csv.unlink()
    elif breakage == "missing_image":
        (folder / "fer0000001.png").unlink()
    elif breakage == "bad_row":
        csv.write_text(csv.read_text() + "x.png,1,2\n")
    elif breakage == "bad_number":
        csv.write_text('a.png,"(0, 0, 48, 48)",x,0,0,0,0,0,0,0,0,0\n')
    elif breakage == "empty_csv":
        csv.write_text("")
    with pytest.raises(DatasetError, match=message):
        load_ferplus(folder)


@needs_shared
def test_seed_layout_detects_and_crops_faces():
    faces = load_class_folders(SEED / "training", 48, 0.1)
    assert len(faces) == 54  # every photo has a detectable face
    assert faces.images.shape == (54, 48, 48)
    assert np.bincount(faces.majority, minlength=7).tolist() == [0, 9, 9, 9, 9, 9, 9]
    assert (faces.targets.sum(axis=1) == 1).all()


@needs_shared
def test_seed_live_test_folder_names_are_mapped(tmp_path):
    faces = load_class_folders(SEED / "live-test", 48, 0.1)  # has a "surprised" folder
    assert EMOTIONS.index("surprise") in set(faces.majority)


def test_class_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        load_class_folders(tmp_path / "missing", 48, 0.1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        load_class_folders(tmp_path / "empty", 48, 0.1)
    (tmp_path / "odd" / "boredom").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "odd" / "boredom" / "a.jpg"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DatasetError, match="unknown emotion"):
        load_class_folders(tmp_path / "odd", 48, 0.1)
    (tmp_path / "broken" / "joy").mkdir(parents=True)
    (tmp_path / "broken" / "joy" / "a.jpg").write_text("not an image")
    with pytest.raises(DatasetError, match="a.jpg: not an image OpenCV can decode"):
        load_class_folders(tmp_path / "broken", 48, 0.1)


def test_class_folder_photos_are_read_as_analyze_reads_them(tmp_path):
    (tmp_path / "d" / "joy").mkdir(parents=True)
    transparent = np.zeros((60, 60, 4), np.uint8)  # black, fully transparent: white once composited
    transparent[20:40, 20:40] = (0, 0, 0, 255)  # an opaque black square in the middle
    cv2.imwrite(str(tmp_path / "d" / "joy" / "alpha.png"), transparent)
    crop = load_class_folders(tmp_path / "d", 48, 0.1).images[0]
    assert crop[0, 0] == 255 and crop[24, 24] == 0


def test_small_crops_without_detectable_face_are_used_whole(tmp_path):
    (tmp_path / "d" / "joy").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "d" / "joy" / "crop.png"), np.full((60, 60), 128, np.uint8))
    faces = load_class_folders(tmp_path / "d", 48, 0.1)
    assert faces.images.shape == (1, 48, 48) and faces.majority.tolist() == [EMOTIONS.index("joy")]

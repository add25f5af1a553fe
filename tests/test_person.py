"""Person segmentation (MediaPipe Selfie Segmentation via LiteRT) on a real photograph."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vidsr.errors import ModelError
from vidsr.masks.tracker import MaskTracker
from vidsr.weights import sha256_file
from vidsr.masks.person import GENERAL, LANDSCAPE, PersonEstimator, person_model_dir
from vidsr.media.sample import sample_photo

DATA = Path(__file__).parent / "data"
SHA256 = {GENERAL: "8d13b7fae74af625c641226813616a2117bd6bca19eb3b75574621fc08557f27",
          LANDSCAPE: "4aafe6223bb8dac6fac8ca8ed56852870a33051ef3f6238822d282a109962894"}


def _astronaut() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(DATA / "astronaut.jpg")), cv2.COLOR_BGR2RGB)


def test_vendored_models_match_their_recorded_checksums():
    for name, digest in SHA256.items():
        assert sha256_file(person_model_dir() / name) == digest
        assert digest in (person_model_dir() / "README.md").read_text()


def test_person_is_segmented_on_a_real_photo():
    pytest.importorskip("ai_edge_litert")
    img = _astronaut()  # 192x192: the general (square) model
    score = PersonEstimator(max_side=192).estimate(img)
    assert score.shape == (192, 192) and score.dtype == np.float32
    assert 0.0 <= score.min() and score.max() <= 1.0
    head = score[20:60, 70:110]  # her face
    sky = score[0:30, 0:40]  # the dark background, top left
    assert head.mean() > 0.8 and sky.mean() < 0.2
    mask = MaskTracker(estimator=PersonEstimator(max_side=192)).update(img)
    assert 0.3 < mask.fg_fraction < 0.8 and mask.binary[40, 90]


def test_landscape_frames_use_the_landscape_model_and_no_person_scores_low():
    pytest.importorskip("ai_edge_litert")
    wide = cv2.resize(sample_photo(), (320, 180), interpolation=cv2.INTER_AREA)  # a dandelion, nobody
    est = PersonEstimator()
    score = est.estimate(wide)
    assert score.shape == (180, 320)
    assert LANDSCAPE in est._models
    assert score.mean() < 0.2


def test_missing_person_model_is_a_clear_error(tmp_path):
    pytest.importorskip("ai_edge_litert")
    with pytest.raises(ModelError, match="person segmentation model not found"):
        PersonEstimator(folder=tmp_path)

"""Person segmentation for ``--mask person``: MediaPipe Selfie Segmentation run with LiteRT.

The two ``.tflite`` models ship in ``vidsr/models/person/`` (Apache-2.0, see its README). The
runtime is ``ai-edge-litert``, the ``[person]`` extra, imported when an estimator is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidsr.checks import check_image
from vidsr.errors import ModelError
from vidsr.extras import require
from vidsr.masks.base import work_size
from vidsr.weights import models_dir

GENERAL = "selfie_segmentation.tflite"
LANDSCAPE = "selfie_segmentation_landscape.tflite"


def person_model_dir() -> Path:
    """``$VIDSR_PERSON_MODEL_DIR``, else person/ in the shipped models folder (:func:`models_dir`)."""
    env = os.environ.get("VIDSR_PERSON_MODEL_DIR")
    return Path(env) if env else models_dir() / "person"


def _interpreter(path: Path, threads: int) -> Any:
    litert = require("ai_edge_litert.interpreter", extra="person",
                     what="--mask person needs the LiteRT runtime (ai-edge-litert)")
    if not path.is_file():
        raise ModelError(f"person segmentation model not found: {path} (it ships in vidsr/models/person/)")
    try:
        it = litert.Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"cannot load person segmentation model {path}: {e}") from None
    inp = it.get_input_details()[0]
    if len(inp["shape"]) != 4 or inp["shape"][3] != 3:
        raise ModelError(f"{path}: expected an (1, H, W, 3) input, got {tuple(inp['shape'])}")
    return it


@dataclass
class PersonEstimator:
    """Person probability per pixel (``MaskEstimator``). Frames wider than 4:3 use the
    landscape model (144x256), others the general one (256x256).

    Args:
        folder: where the two ``.tflite`` files are (default :func:`person_model_dir`).
        max_side: working resolution's long side (the probability is upsampled to it).
        threads: LiteRT CPU threads.
    """

    folder: Path | None = None
    max_side: int = 480
    threads: int = 2
    name: str = "person"
    threshold: float = 0.5
    _models: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder) if self.folder is not None else person_model_dir()
        self._model(GENERAL)  # fail early: missing runtime or file

    def _model(self, file: str) -> Any:
        if file not in self._models:
            self._models[file] = _interpreter(Path(self.folder) / file, self.threads)
        return self._models[file]

    def estimate(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (h, w) float32 person probability at working size."""
        check_image(image)
        H, W = image.shape[:2]
        it = self._model(LANDSCAPE if W > H * 4 / 3 else GENERAL)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        _, h, w, _ = inp["shape"]
        x = cv2.resize(image, (int(w), int(h)), interpolation=cv2.INTER_AREA).astype(np.float32) * (1.0 / 255.0)
        it.set_tensor(inp["index"], x[None])
        it.invoke()
        prob = it.get_tensor(out["index"])[0, :, :, 0].astype(np.float32)
        wh, ww = work_size(H, W, self.max_side)
        prob = cv2.resize(prob, (ww, wh), interpolation=cv2.INTER_LINEAR)
        return np.clip(prob, 0.0, 1.0)

"""The mask options (:class:`MaskSpec`, ``--mask`` parsing) and the estimator that
``--mask focus|depth|depth+focus|person|FILE`` names.

Heavy pieces (transformers, onnxruntime sessions, LiteRT) are imported only for the
kind that needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vidsr.errors import InputError
from vidsr.masks.base import MaskEstimator
from vidsr.masks.file import FileMaskEstimator
from vidsr.masks.focus import FocusEstimator

MaskKind = Literal["focus", "depth", "depth+focus", "person", "file"]
MASK_KINDS = ("focus", "depth", "depth+focus", "person")

# Anchor spacing and carry per kind when the user gives no --mask-every / --mask-carry.
# Depth is the expensive one: run it every 16th frame (benchmarks/depth_cpu.py) and warp the mask along optical flow.
DEFAULT_EVERY = {"focus": 2, "person": 2, "depth": 16, "depth+focus": 16, "file": 1}
DEFAULT_CARRY = {"focus": "hold", "person": "hold", "depth": "flow", "depth+focus": "flow", "file": "hold"}


@dataclass(frozen=True)
class MaskSpec:
    """Everything the mask options say.

    Args:
        kind: which estimator; ``file`` reads ``path``, a grey mask video.
        depth_model: Depth Anything folder or ``.onnx`` file (depth kinds).
        depth_batch: anchor frames per depth-network call; None: 4 on CUDA, 1 on CPU (where a
            batch barely lowers the cost per frame and makes the mask stage wait for 4 anchors).
        depth_size: long side of the depth network's input, or a DPT's square side (snapped to the
            network's multiple); None: 448 for Depth Anything, the training size for DPT/MiDaS.
        depth_precision: fp32 or bf16 (torch only).
        device: cpu or cuda[:N] for the depth network.
        focus_point: ``"x,y"`` (fractions or pixels): the focal plane is the depth there.
        depth_tolerance: half-width of the in-focus depth band (normalised inverse depth).
    """

    kind: MaskKind = "focus"
    path: Path | None = None
    depth_model: Path | None = None
    depth_batch: int | None = None
    depth_size: int | None = None
    depth_precision: Literal["fp32", "bf16"] = "fp32"
    device: str = "cpu"
    focus_point: str | None = None
    depth_tolerance: float = 0.15

    @property
    def every(self) -> int:
        return DEFAULT_EVERY[self.kind]

    def anchor_every(self, mask_every: int | None) -> int:
        """``--mask-every`` checked against the kind (None: the kind's default). A mask file gives
        each frame its own mask, read in order: it cannot skip frames."""
        if self.kind == "file" and mask_every not in (None, 1):
            raise InputError(f"a mask file has a mask for every frame: --mask-every must be 1, got {mask_every}")
        return mask_every or self.every

    @property
    def carry(self) -> str:
        return DEFAULT_CARRY[self.kind]

    @property
    def lookahead(self) -> int:
        """How many anchors the pipeline collects before asking for masks (depth batching)."""
        return self.batch if self.kind in ("depth", "depth+focus") else 1

    @property
    def batch(self) -> int:
        """Anchor frames per depth-network call."""
        if self.depth_batch is not None:
            return self.depth_batch
        return 4 if self.device.startswith("cuda") else 1


def parse_mask(text: str) -> tuple[MaskKind, Path | None]:
    """``--mask`` value -> (kind, path): a known kind, or an existing grey mask video."""
    if text in MASK_KINDS:
        return text, None  # type: ignore[return-value]
    p = Path(text).expanduser()
    if p.is_file():
        return "file", p
    raise InputError(f"--mask must be one of {', '.join(MASK_KINDS)} or a mask video file; "
                     f"{text!r} is neither")


def build_estimator(spec: MaskSpec, *, frame_size: tuple[int, int] | None = None) -> MaskEstimator:
    """The estimator ``spec`` names.

    Args:
        frame_size: (height, width) of the video; needed for a pixel ``focus_point``.
    Raises:
        ModelError / BackendUnavailable: missing depth weights, wrong folder, missing extra.
        InputError: bad focus point, tolerance or mask file.
    """
    if spec.kind == "focus":
        if spec.focus_point is not None:
            raise InputError("--focus-point needs a depth mask: --mask depth")
        return FocusEstimator()
    if spec.kind == "person":
        from vidsr.masks.person import PersonEstimator

        return PersonEstimator()
    if spec.kind == "file":
        if spec.path is None:
            raise InputError("a file mask needs its path")
        return FileMaskEstimator(path=spec.path)
    if spec.depth_batch is not None and spec.depth_batch < 1:
        raise InputError(f"--depth-batch must be >= 1, got {spec.depth_batch}")
    from vidsr.masks.depth import load_depth_net
    from vidsr.masks.focal import DepthMaskEstimator, FocalOptions, parse_focus_point

    if spec.focus_point is not None:
        h, w = frame_size if frame_size is not None else (None, None)
        focal = FocalOptions(mode="point", tolerance=spec.depth_tolerance,
                             point=parse_focus_point(spec.focus_point, width=w, height=h))
    else:
        focal = FocalOptions(mode="focus" if spec.kind == "depth+focus" else "nearest",
                             tolerance=spec.depth_tolerance)
    net = load_depth_net(spec.depth_model, long_side=spec.depth_size, batch=spec.batch,
                         precision=spec.depth_precision, device=spec.device)
    return DepthMaskEstimator(net=net, focal=focal)

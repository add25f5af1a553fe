"""Deadline control for live mode: fewer SR tiles when the stream falls behind, more when it catches up.

Each frame has a budget of one frame period. When a frame leaves SR later than ``target_s`` after
it arrived, the SR tiles per frame are capped (the most in-focus kept: ``FrameProcessor.process``'s
``max_tiles``); when latency has stayed under half the target for ``hold`` frames and the measured
cost of a tile says more fit in the budget, the cap grows by a step. The dead band between half the
target and the target, the hold and the cost check are the hysteresis that keeps the SR region from
flickering; a cut waits for the frames already in flight to show its effect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class DeadlineController:
    """The SR tile cap of the next frame, from the latency and cost of the frames before.

    Args:
        budget_s: one frame period (1 / frame rate).
        tiles_total: tiles in the frame's plan.
        workers: frames upscaled at once (each may take ``workers`` budgets).
        target_s: latency (arrival to SR done) above which the cap is cut; default
            max(0.3 s, 6 budgets).
        hold: frames of latency under ``target_s / 2`` before the cap grows (default: 0.5 s of frames)
            to what the measured cost of a tile says fits in the budget (at least a twentieth of
            ``tiles_total`` more, else it waits).
        cut: the cap falls to this fraction of the tiles the last frames used.
        headroom: share of ``workers`` budgets a frame's work may fill before the cap may grow.
    """

    budget_s: float
    tiles_total: int
    workers: int = 1
    target_s: float | None = None
    hold: int | None = None
    cut: float = 0.7
    headroom: float = 0.85
    cap: int | None = field(default=None, init=False)  # None: no limit
    changes: int = field(default=0, init=False)  # how often the cap moved (flicker check)
    _calm: int = field(default=0, init=False)
    _since_cut: int = field(default=1 << 30, init=False)
    _cut_latency: float = field(default=0.0, init=False)
    _tile_s: float | None = field(default=None, init=False)  # EMA of SR seconds per tile
    _base_s: float | None = field(default=None, init=False)  # EMA of a frame's other seconds
    _used: float = field(default=0.0, init=False)  # EMA of tiles SR'd per frame
    _wanted: int = field(default=0, init=False)  # most tiles the mask selected lately

    def __post_init__(self) -> None:
        if self.budget_s <= 0:
            raise ValueError(f"budget_s must be > 0, got {self.budget_s}")
        if self.target_s is None:
            self.target_s = max(0.3, 6 * self.budget_s)
        if self.hold is None:
            self.hold = max(5, math.ceil(0.5 / self.budget_s))

    def prime(self, tile_s: float) -> None:
        """Start from a measured SR cost per tile (seconds, before the stream): the first frames, sent
        to SR before any has finished, are capped to what fits in their budget instead of going
        uncapped (a network twice too slow made the first frame 1.5 s late)."""
        if tile_s > 0:
            self._tile_s = tile_s
            room = self.affordable()
            if room < self.tiles_total:  # at least a tile: frames go on measuring what a tile costs
                self._set(max(1, int(room)))

    def limit(self) -> int | None:
        """The tile cap for the next frame (None: every tile the mask selects)."""
        return self.cap

    def late(self, latency_s: float) -> bool:
        """Whether a frame this far behind counts as late (past its deadline)."""
        return latency_s > self.target_s

    def affordable(self) -> float:
        """Tiles a frame can SR within its share of the budget, by the measured costs (inf until measured)."""
        if self._tile_s is None or self._tile_s <= 0:
            return math.inf
        room = self.workers * self.budget_s * self.headroom - (self._base_s or 0.0)
        return max(0.0, room / self._tile_s)

    def observe(self, *, latency_s: float, sr_s: float, other_s: float, tiles: int, selected: int) -> None:
        """Account for one finished frame.

        Args:
            latency_s: seconds from the frame's arrival to the end of its SR.
            sr_s: seconds its SR network calls took; other_s: the rest of its processing.
            tiles: tiles it SR'd; selected: tiles its mask selected (before the cap).
        """
        if tiles:
            self._tile_s = sr_s / tiles if self._tile_s is None else 0.8 * self._tile_s + 0.2 * sr_s / tiles
        self._base_s = other_s if self._base_s is None else 0.8 * self._base_s + 0.2 * other_s
        self._used = 0.7 * self._used + 0.3 * tiles
        self._wanted = max(selected, int(self._wanted * 0.98))
        self._since_cut += 1
        if latency_s > self.target_s:
            self._calm = 0
            # a cut shows only after the frames in flight, and the backlog drains after that:
            # cut again only while latency still grows
            if self._since_cut > self.workers + 1 and latency_s > self._cut_latency + self.budget_s / 2:
                self._lower(latency_s)
            return
        self._cut_latency = 0.0
        self._calm = self._calm + 1 if latency_s < self.target_s / 2 else 0
        if self.cap is not None and self._calm >= self.hold:
            self._calm = 0
            step = max(1, math.ceil(self.tiles_total / 20))
            room = math.floor(min(self.affordable(), 1 << 30))
            if room >= self.cap + step:  # what the measured cost says fits, at least a step more
                self._set(None if room >= self._wanted else room)

    def _lower(self, latency_s: float) -> None:
        used = min(self._used, self.cap if self.cap is not None else self._used)
        cap = min(int(used * self.cut), int(self.affordable()))
        if self.cap is not None:
            cap = min(cap, self.cap - 1)
        self._set(max(0, cap))
        self._since_cut, self._cut_latency = 0, latency_s

    def _set(self, cap: int | None) -> None:
        if cap != self.cap:
            self.cap = cap
            self.changes += 1

"""The locomotive's cab camera: a small JPEG of the haulage drift ahead, rendered from the loco's position.

A straight drift seen from 1.5 m above the rails: walls, roof and floor are ray-cast once per pixel
into a depth map (the geometry never changes), so a frame is a few vectorised lookups with the
track position added: sleepers, rails, roof lamps every 25 m and the rock texture move past at the
loco's speed. Ore chutes and the buffer stop at the track ends are drawn at their fixed positions,
scaled by distance. The camera faces the direction of travel (front or rear cab). A 320x180 frame
costs about 2 ms of CPU with Pillow's JPEG encoder, so 5 frames/s is about 1 % of a core.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

WIDTH, HEIGHT = 320, 180
EYE_M = 1.5  # camera height above the rails
HALF_WIDTH_M = 2.0  # drift half width
ROOF_M = 2.0  # roof above the camera
FOCAL = 150.0  # pixels
LAMP_SPACING_M = 25.0
SLEEPER_SPACING_M = 0.8
VIEW_M = 60.0


class TunnelCamera:
    """Renders frames for one track (length and chute positions fixed)."""

    def __init__(self, track_length_m: float, chutes_m: tuple[float, ...], *, quality: int = 70) -> None:
        self.track_length_m = track_length_m
        self.chutes_m = chutes_m
        self.quality = quality
        cx, cy = WIDTH / 2, HEIGHT * 0.45
        u = (np.arange(WIDTH, dtype=np.float32) + 0.5 - cx)[None, :]
        v = (np.arange(HEIGHT, dtype=np.float32) + 0.5 - cy)[:, None]
        with np.errstate(divide="ignore"):
            z_floor = np.where(v > 0, EYE_M * FOCAL / v, np.inf)
            z_roof = np.where(v < 0, ROOF_M * FOCAL / -v, np.inf)
            z_wall = np.where(u != 0, HALF_WIDTH_M * FOCAL / np.abs(u), np.inf)
        z_fr = np.minimum(z_floor, z_roof)
        wall = z_wall < z_fr
        z = np.minimum(np.where(wall, z_wall, z_fr), VIEW_M * 2).astype(np.float32)
        self.z = z
        self.wall = wall
        self.floor = ~wall & (v > 0) & np.ones_like(u, dtype=bool)
        self.roof = ~wall & ~self.floor
        x = u / FOCAL * z  # lateral position where the ray hits
        self.rail = self.floor & (np.abs(np.abs(x) - 0.45) < 0.035 + z * 0.002)
        self.sleeper_band = self.floor & (np.abs(x) < 0.75)
        self.lamp_band = self.roof & (np.abs(x) < 0.25)
        self.fog = np.exp(-z / 18.0).astype(np.float32)
        rng = np.random.default_rng(7)
        self.rock = rng.uniform(0.55, 1.0, 512).astype(np.float32)  # texture along the drift, 4 cells per metre
        self.grain = rng.uniform(0.85, 1.0, (HEIGHT, WIDTH)).astype(np.float32)
        base = np.zeros((HEIGHT, WIDTH, 3), np.float32)
        base[self.wall] = (120, 105, 90)
        base[self.floor] = (85, 75, 65)
        base[self.roof] = (100, 95, 90)
        self.base = base
        self.cx, self.cy = cx, cy

    def render(self, position: float, speed: float, commanded: float, state: str) -> bytes:
        """One JPEG frame of the view from ``position`` (m), facing the direction of travel."""
        facing = -1.0 if (commanded or speed) < 0 else 1.0
        along = position + facing * self.z  # track position seen by each pixel
        shade = self.fog * self.grain
        cells = (np.floor(along * 4).astype(np.int64)) % len(self.rock)
        shade = shade * np.where(self.wall | self.roof, self.rock[cells], 1.0)
        img = self.base * shade[..., None]
        sleepers = self.sleeper_band & ((along % SLEEPER_SPACING_M) < 0.22)
        img[sleepers] = img[sleepers] * 0.45 + np.array([60, 40, 20], np.float32) * self.fog[sleepers, None]
        img[self.rail] = np.array([190, 190, 200], np.float32) * self.fog[self.rail, None] + 20
        lamps = self.lamp_band & ((along % LAMP_SPACING_M) < 0.6)
        img[lamps] = np.array([255, 240, 190], np.float32)
        glow = self.wall & (np.abs((along % LAMP_SPACING_M) - 0.3) < 1.5)
        img[glow] *= 1.5
        beyond = (along < 0) | (along > self.track_length_m)  # past the buffer stop: dark rock face
        img[beyond] = img[beyond] * 0.25
        frame = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(frame)
        for chute in self.chutes_m:
            self._box(draw, facing * (chute - position), (0.9, 2.0), (-0.3, 1.8), (150, 95, 40), "CHUTE")
        for end in (0.0, self.track_length_m):
            self._box(draw, facing * (end - position), (-0.9, 0.9), (-1.5, -0.3), (200, 30, 30), "STOP")
        label = f"{'FRONT' if facing > 0 else 'REAR'} CAM  {position:6.1f} m  {speed:+.2f} m/s  {state.upper()}"
        draw.rectangle((0, HEIGHT - 14, WIDTH, HEIGHT), fill=(0, 0, 0))
        draw.text((4, HEIGHT - 13), label, fill=(255, 220, 80) if state == "safe_stop" else (220, 220, 220))
        out = io.BytesIO()
        frame.save(out, "JPEG", quality=self.quality)
        return out.getvalue()

    def _box(self, draw: ImageDraw.ImageDraw, dist: float, xs: tuple[float, float], ys: tuple[float, float],
             colour: tuple[int, int, int], text: str) -> None:
        """A flat board across the view at ``dist`` metres ahead (x lateral, y above the camera)."""
        if not 0.8 < dist < VIEW_M:
            return
        fog = float(np.exp(-dist / 18.0))
        u0, u1 = (self.cx + FOCAL * x / dist for x in xs)
        v0, v1 = (self.cy - FOCAL * y / dist for y in reversed(ys))
        fill = tuple(int(c * (0.3 + 0.7 * fog)) for c in colour)
        draw.rectangle((u0, v0, u1, v1), fill=fill)
        if u1 - u0 > 30:
            draw.text((u0 + 2, v0 + 2), text, fill=(255, 255, 255))


def mean_luma(jpeg: bytes) -> npt.NDArray[np.float64]:
    """Mean brightness per row of a frame (tests use it to see the picture change as the loco moves)."""
    with Image.open(io.BytesIO(jpeg)) as im:
        a = np.asarray(im.convert("L"), dtype=np.float64)
    out: npt.NDArray[np.float64] = a.mean(axis=1)
    return out

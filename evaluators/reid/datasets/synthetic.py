"""Synthetic pedestrians in the Market-1501 layout: the embedded default dataset.

No real re-ID set can be downloaded on the project's machines, yet a search must rank models on
something where ranking means something. An identity is a combination of discrete attributes
(upper/lower clothing colour, upper-body pattern, shoes, hair, skin, bag type, side and colour,
hat) plus a small continuous shade of each colour, so several identities share most attributes
and differ in one region: hard negatives. Each camera has its own colour cast, brightness, blur,
scale and viewpoint crop; each image has pose jitter, background clutter and, sometimes, an
occluder. Difficulty knobs live in `SynthConfig`.

    attnas-synth --out data/synth --ids 300 --cams 4 --seed 0      (its command line: attnas.search.apps.synth_app)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from attnas.evaluators.artefacts import made_once
from attnas.evaluators.progress import progress

PALETTE = np.array(
    [[200, 30, 30], [30, 60, 180], [30, 140, 50], [230, 200, 40], [240, 240, 240], [25, 25, 25],
     [120, 120, 120], [140, 70, 20], [230, 120, 30], [110, 40, 150], [235, 150, 180], [20, 160, 170]],
    dtype=np.float32,
)
SKIN = np.array([[255, 220, 190], [230, 185, 150], [190, 140, 100], [140, 95, 60], [90, 60, 40]], dtype=np.float32)
HAIR = np.array([[20, 15, 10], [90, 60, 30], [200, 170, 90], [150, 150, 150], [150, 50, 20]], dtype=np.float32)
PATTERNS = ("solid", "hstripes", "vstripes", "checks", "logo")
BAGS = ("none", "backpack", "handbag", "shoulder")


@dataclass
class SynthConfig:
    ids: int = 300  # identities; half train, half test
    cams: int = 4
    images_per_cam: int = 3  # per identity and camera (ids are seen by 2..cams cameras)
    distractors: int = 100  # gallery images of id 0000, never a true match
    junk: int = 40  # gallery images of id -1, removed by the protocol
    width: int = 64
    height: int = 128
    shade: float = 18.0  # per-identity colour offset (std): identities sharing a palette colour differ slightly
    camera_cast: float = 0.25  # per-camera colour gain spread
    camera_blur: float = 1.2  # max Gaussian blur radius of a camera
    occlusion: float = 0.3  # probability of an occluder in an image
    clutter: int = 6  # background rectangles per image
    noise: float = 8.0  # pixel noise std
    seed: int = 0


def _identity(rng: np.random.Generator, cfg: SynthConfig) -> dict:
    def colour(table):
        return np.clip(table[rng.integers(len(table))] + rng.normal(0, cfg.shade, 3), 0, 255)

    return {
        "upper": colour(PALETTE), "upper2": colour(PALETTE), "lower": colour(PALETTE), "shoes": colour(PALETTE),
        "skin": colour(SKIN), "hair": colour(HAIR), "pattern": PATTERNS[rng.integers(len(PATTERNS))],
        "bag": BAGS[rng.integers(len(BAGS))], "bag_colour": colour(PALETTE), "bag_side": int(rng.integers(2)),
        "hat": bool(rng.random() < 0.2), "hat_colour": colour(PALETTE), "build": float(rng.uniform(0.85, 1.15)),
        "long_sleeves": bool(rng.random() < 0.5), "skirt": bool(rng.random() < 0.2),
    }


def _camera(rng: np.random.Generator, cfg: SynthConfig) -> dict:
    return {
        "gain": np.clip(1 + rng.normal(0, cfg.camera_cast, 3), 0.5, 1.6),
        "brightness": float(rng.uniform(-35, 35)),
        "blur": float(rng.uniform(0, cfg.camera_blur)),
        "scale": float(rng.uniform(0.8, 1.0)),
        "background": rng.uniform(40, 200, 3),
    }


def _rect(draw: ImageDraw.ImageDraw, box, fill) -> None:
    x0, y0, x1, y1 = (int(v) for v in box)
    draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=tuple(int(c) for c in fill))


def render(person: dict, camera: dict, rng: np.random.Generator, cfg: SynthConfig) -> Image.Image:
    """One image of `person` seen by `camera`, drawn at 2x and downsampled (anti-aliasing)."""
    W, H = cfg.width * 2, cfg.height * 2
    bg = np.clip(camera["background"] + rng.normal(0, 20, 3), 0, 255)
    img = Image.new("RGB", (W, H), tuple(int(c) for c in bg))
    draw = ImageDraw.Draw(img)
    for _ in range(cfg.clutter):  # background clutter: other objects, walls, signs
        x0, y0 = rng.uniform(0, W), rng.uniform(0, H)
        _rect(draw, (x0, y0, x0 + rng.uniform(5, W / 2), y0 + rng.uniform(5, H / 3)), rng.uniform(0, 255, 3))
    s = camera["scale"] * rng.uniform(0.93, 1.0)
    cx = W / 2 + rng.normal(0, W * 0.05)
    top = H * (1 - s) / 2 + rng.normal(0, H * 0.02)
    h = H * s
    half = W * 0.22 * person["build"] * s
    head_r = h * 0.065
    # legs, with stance jitter
    stance = rng.uniform(-0.25, 0.25) * half
    lower_top, lower_bottom = top + h * 0.52, top + h * 0.93
    if person["skirt"]:
        draw.polygon([(cx - half * 0.8, lower_top), (cx + half * 0.8, lower_top), (cx + half * 1.1, top + h * 0.72),
                      (cx - half * 1.1, top + h * 0.72)], fill=tuple(int(c) for c in person["lower"]))
        for sign in (-1, 1):
            _rect(draw, (cx + sign * half * 0.45 - half * 0.15, top + h * 0.72, cx + sign * half * 0.45 + half * 0.15, lower_bottom), person["skin"])
    else:
        for sign in (-1, 1):
            x = cx + sign * (half * 0.45) + (stance if sign > 0 else -stance)
            _rect(draw, (x - half * 0.3, lower_top, x + half * 0.3, lower_bottom), person["lower"])
    for sign in (-1, 1):  # shoes
        x = cx + sign * (half * 0.45) + (stance if sign > 0 else -stance) * (0 if person["skirt"] else 1)
        _rect(draw, (x - half * 0.35, lower_bottom, x + half * 0.35, top + h), person["shoes"])
    # torso and pattern
    torso = (cx - half, top + h * 0.15, cx + half, top + h * 0.54)
    _rect(draw, torso, person["upper"])
    pattern, c2 = person["pattern"], person["upper2"]
    if pattern == "hstripes":
        for y in np.arange(torso[1], torso[3], h * 0.06)[::2]:
            _rect(draw, (torso[0], y, torso[2], y + h * 0.03), c2)
    elif pattern == "vstripes":
        for x in np.arange(torso[0], torso[2], half * 0.3)[::2]:
            _rect(draw, (x, torso[1], x + half * 0.15, torso[3]), c2)
    elif pattern == "checks":
        step = half * 0.4
        for i, x in enumerate(np.arange(torso[0], torso[2], step)):
            for j, y in enumerate(np.arange(torso[1], torso[3], step)):
                if (i + j) % 2:
                    _rect(draw, (x, y, x + step, y + step), c2)
    elif pattern == "logo":
        _rect(draw, (cx - half * 0.4, torso[1] + h * 0.08, cx + half * 0.4, torso[1] + h * 0.18), c2)
    # arms
    arm = person["upper"] if person["long_sleeves"] else person["skin"]
    swing = rng.uniform(-0.04, 0.04) * h
    for sign in (-1, 1):
        x = cx + sign * (half + half * 0.18)
        _rect(draw, (x - half * 0.18, top + h * 0.16 + swing * sign, x + half * 0.18, top + h * 0.5 + swing * sign), arm)
    # head, hair, hat
    hy = top + h * 0.08
    draw.ellipse([cx - head_r, hy - head_r, cx + head_r, hy + head_r], fill=tuple(int(c) for c in person["skin"]))
    draw.chord([cx - head_r, hy - head_r * 1.1, cx + head_r, hy + head_r * 0.4], 180, 360, fill=tuple(int(c) for c in person["hair"]))
    if person["hat"]:
        _rect(draw, (cx - head_r * 1.2, hy - head_r * 1.3, cx + head_r * 1.2, hy - head_r * 0.5), person["hat_colour"])
    # carried object
    side = 1 if person["bag_side"] else -1
    if person["bag"] == "backpack":
        _rect(draw, (cx + side * half * 0.6, top + h * 0.2, cx + side * half * 1.25, top + h * 0.45), person["bag_colour"])
    elif person["bag"] == "handbag":
        x = cx + side * half * 1.4
        _rect(draw, (x - half * 0.3, top + h * 0.45, x + half * 0.3, top + h * 0.58), person["bag_colour"])
    elif person["bag"] == "shoulder":
        _rect(draw, (cx - half, top + h * 0.3, cx + half, top + h * 0.34), person["bag_colour"])
        x = cx + side * half * 1.2
        _rect(draw, (x - half * 0.25, top + h * 0.36, x + half * 0.25, top + h * 0.5), person["bag_colour"])
    if rng.random() < cfg.occlusion:  # occluder: a pole, a car, another person's part
        if rng.random() < 0.5:
            x0 = rng.uniform(0, W * 0.8)
            _rect(draw, (x0, 0, x0 + rng.uniform(W * 0.1, W * 0.3), H), rng.uniform(0, 255, 3))
        else:
            y0 = rng.uniform(H * 0.55, H * 0.85)
            _rect(draw, (0, y0, W, H), rng.uniform(0, 255, 3))
    img = img.resize((cfg.width, cfg.height), Image.BILINEAR)
    if camera["blur"] > 0.2:
        img = img.filter(ImageFilter.GaussianBlur(camera["blur"]))
    arr = np.asarray(img, dtype=np.float32) * camera["gain"] + camera["brightness"]
    arr += rng.normal(0, cfg.noise, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def generate(out: str | Path, cfg: SynthConfig | None = None) -> Path:
    """Write a Market-1501-layout dataset to `out` (once: an existing `out` is kept; parallel
    jobs generate it once; an interrupted generation leaves nothing at `out`); returns `out`."""
    cfg = cfg or SynthConfig()
    if cfg.ids < 4 or cfg.cams < 2:
        raise ValueError(f"the synthetic set needs ids >= 4 and cams >= 2, got ids={cfg.ids}, cams={cfg.cams}")
    return made_once(out, lambda folder: _write(folder, cfg), what=f"the synthetic data set ({cfg.ids} ids)", folder=True)


def _write(root: Path, cfg: SynthConfig) -> None:
    rng = np.random.default_rng(cfg.seed)
    cameras = [_camera(rng, cfg) for _ in range(cfg.cams)]
    people = [_identity(rng, cfg) for _ in range(cfg.ids)]
    folders = {name: root / name for name in ("bounding_box_train", "query", "bounding_box_test")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    num_train = cfg.ids // 2
    frame = 0
    for index, person in enumerate(progress(people, f"generating {cfg.ids} synthetic identities", unit="ids")):
        pid = index + 1
        seen_by = sorted(rng.choice(cfg.cams, size=int(rng.integers(2, cfg.cams + 1)), replace=False))
        for cam in seen_by:
            for shot in range(cfg.images_per_cam):
                frame += 1
                name = f"{pid:04d}_c{cam + 1}s1_{frame:06d}_{shot:02d}.jpg"
                if index < num_train:
                    folder = folders["bounding_box_train"]
                else:  # Market protocol: one query per id and camera, the rest in the gallery
                    folder = folders["query"] if shot == 0 and cam != seen_by[-1] else folders["bounding_box_test"]
                render(person, cameras[cam], rng, cfg).save(folder / name, quality=92)
    for kind, count, pid_text in (("distractor", cfg.distractors, "0000"), ("junk", cfg.junk, "-1")):
        for _ in range(count):
            frame += 1
            cam = int(rng.integers(cfg.cams))
            img = render(_identity(rng, cfg), cameras[cam], rng, cfg)
            if kind == "junk":  # junk in Market: bad crops, mostly background
                img = img.crop((0, 0, cfg.width, cfg.height // 3)).resize((cfg.width, cfg.height))
            img.save(folders["bounding_box_test"] / f"{pid_text}_c{cam + 1}s1_{frame:06d}_00.jpg", quality=92)

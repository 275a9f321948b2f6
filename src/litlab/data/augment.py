"""Augmentation of training batches on the device they train on: one affine grid and one
`grid_sample` move every image of a batch by its own crop and turn, so a GPU does not wait
for per-image work in the loader's workers (torchvision's transforms)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

RATIO = (3 / 4, 4 / 3)  # a crop's aspect ratio, as torchvision's RandomResizedCrop draws it
LIMITS = {"crop": (0, 1), "rotate": (0, 45), "brightness": (0, 1), "contrast": (0, 1)}


@dataclass(frozen=True)
class Augment:
    """What `data.augment` asks for; all off by default (a 6 turned is a 9)."""

    crop: float = 0.0  # the least share of the area a random resized crop keeps; 0: off
    flip: bool = False  # mirror half the images left to right
    rotate: float = 0.0  # turn each image by up to this many degrees either way
    brightness: float = 0.0  # scale each image's brightness by 1 - value to 1 + value
    contrast: float = 0.0  # scale its contrast around its mean by 1 - value to 1 + value

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> Augment:
        """The options of `data.augment`; a ValueError names a key or value it cannot take."""
        known = [f.name for f in fields(cls)]
        if unknown := [k for k in options or {} if k not in known]:
            raise ValueError(
                f"augment.{unknown[0]}: no such augmentation; the keys are {', '.join(known)}"
            )
        augment = cls(**(options or {}))
        for name, (low, high) in LIMITS.items():
            value = getattr(augment, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"augment.{name}={value!r}: must be a number")
            if not low <= value <= high or (name == "crop" and value == 1):
                shown = "0 (off) or above 0 and below 1" if name == "crop" else f"{low} to {high}"
                raise ValueError(f"augment.{name}={value}: must be {shown}")
        if not isinstance(augment.flip, bool):
            raise ValueError(f"augment.flip={augment.flip!r}: must be true or false")
        return augment

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Images (B, C, H, W) in [0, 1], each moved by its own draws from `generator`."""
        if self.crop or self.rotate:
            x = self._move(x, generator)
        if self.flip:  # exact, unlike sampling a mirrored grid
            mirrored = _uniform(x, generator, 0, 1) < 0.5
            x = torch.where(mirrored[:, None, None, None], x.flip(-1), x)
        if self.brightness:
            x = x * _factor(x, generator, self.brightness)
        if self.contrast:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * _factor(x, generator, self.contrast) + mean
        return x.clamp(0, 1) if self.brightness or self.contrast else x

    def _move(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Each image cropped and turned, resampled to its size (reflected at the borders)."""
        area = 1 - _uniform(x, generator, 0, 1) * (1 - self.crop)
        ratio = _uniform(x, generator, math.log(RATIO[0]), math.log(RATIO[1])).exp()
        if not self.crop:
            area, ratio = torch.ones_like(area), torch.ones_like(ratio)
        w = (area * ratio).sqrt().clamp(max=1)  # the crop's share of the width, height
        h = (area / ratio).sqrt().clamp(max=1)
        cx = (_uniform(x, generator, 0, 1) * 2 - 1) * (1 - w)  # its centre, in [-1, 1]
        cy = (_uniform(x, generator, 0, 1) * 2 - 1) * (1 - h)
        angle = _uniform(x, generator, -self.rotate, self.rotate) * (math.pi / 180)
        cos, sin = angle.cos(), angle.sin()
        # input point = centre + scale(w, h) @ rotation @ output point (affine_grid's theta)
        theta = torch.stack([w * cos, -w * sin, cx, h * sin, h * cos, cy], dim=1).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


def _uniform(x: Tensor, generator: torch.Generator, low: float, high: float) -> Tensor:
    """(B,) draws from U(low, high), on x's device."""
    draw = torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype)
    return low + (high - low) * draw


def _factor(x: Tensor, generator: torch.Generator, spread: float) -> Tensor:
    """(B, 1, 1, 1) factors from U(1 - spread, 1 + spread)."""
    return _uniform(x, generator, 1 - spread, 1 + spread)[:, None, None, None]

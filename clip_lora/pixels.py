"""CLIP's pixel preprocessing in numpy and PIL alone, so an ONNX export is served without torch or transformers.

    to_pixels = ClipPixels.from_pretrained("runs/demo-merged")      # reads preprocessor_config.json
    pixel_values = to_pixels([rgb_image, ...])                        # (N, 3, H, W) float32

The steps and their arithmetic are CLIPImageProcessor's (its PIL backend, the one transformers uses without
torchvision): resize the shortest edge with PIL (bicubic; the long edge is int(size * long / short)), center crop
(zero padding where the image is smaller than the crop), rescale in float64 then float32, (x - mean) / std in
float32. tests/test_onnx_pixels.py checks the pixels equal the processor's on real and odd generated images.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PREPROCESSOR_CONFIG = "preprocessor_config.json"  # what the Hub's ONNX builds of CLIP (Transformers.js) read
PROCESSOR_CONFIG = "processor_config.json"  # transformers 5 saves a CLIPProcessor's settings here, nested
BICUBIC = 3  # PIL's and transformers' PILImageResampling value for bicubic


@dataclass(frozen=True)
class ClipPixels:
    shortest_edge: int
    crop_height: int
    crop_width: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    rescale_factor: float = 1 / 255
    resample: int = BICUBIC

    @classmethod
    def from_config(cls, config: dict) -> ClipPixels:
        size, crop = config.get("size", {}), config.get("crop_size", {})
        edge = size.get("shortest_edge") if isinstance(size, dict) else size
        if not edge or not crop.get("height") or not crop.get("width"):
            raise ValueError(
                f"{PREPROCESSOR_CONFIG} needs size.shortest_edge and crop_size.height/width; got {size}, {crop}"
            )
        # The switches CLIP's processor has on; an export whose config turns one off is not what this reproduces.
        for switch in ("do_resize", "do_center_crop", "do_rescale", "do_normalize"):
            if config.get(switch, True) is not True:
                raise ValueError(
                    f"{PREPROCESSOR_CONFIG} sets {switch} false; only CLIP's defaults are served"
                )
        return cls(
            shortest_edge=int(edge),
            crop_height=int(crop["height"]),
            crop_width=int(crop["width"]),
            image_mean=tuple(float(x) for x in config["image_mean"]),
            image_std=tuple(float(x) for x in config["image_std"]),
            rescale_factor=float(config.get("rescale_factor", 1 / 255)),
            resample=int(config.get("resample", BICUBIC)),
        )

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> ClipPixels:
        """From preprocessor_config.json, else the image part of transformers 5's processor_config.json."""
        path = Path(model_dir) / PREPROCESSOR_CONFIG
        if path.is_file():
            return cls.from_config(json.loads(path.read_text()))
        return cls.from_config(
            json.loads((Path(model_dir) / PROCESSOR_CONFIG).read_text())["image_processor"]
        )

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the shortest-edge resize: transformers' get_resize_output_image_size."""
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)

    def crop(self, array: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (crop_h, crop_w, 3), centered; zero-padded like transformers' center_crop."""
        height, width = array.shape[:2]
        out_h, out_w = max(self.crop_height, height), max(self.crop_width, width)
        if (out_h, out_w) != (height, width):
            padded = np.zeros((out_h, out_w, 3), dtype=array.dtype)
            top, left = math.ceil((out_h - height) / 2), math.ceil((out_w - width) / 2)
            padded[top : top + height, left : left + width] = array
            array = padded
        top, left = (out_h - self.crop_height) // 2, (out_w - self.crop_width) // 2
        return array[top : top + self.crop_height, left : left + self.crop_width]

    def one(self, image: Image.Image) -> np.ndarray:
        """An RGB PIL image -> (3, H, W) float32 pixel values."""
        resized = image.resize(self.resized_size(*image.size), resample=self.resample)
        array = self.crop(np.asarray(resized, dtype=np.uint8))
        scaled = (array.astype(np.float64) * self.rescale_factor).astype(np.float32)
        mean = np.array(self.image_mean, dtype=np.float32)
        std = np.array(self.image_std, dtype=np.float32)
        return np.ascontiguousarray(((scaled - mean) / std).transpose(2, 0, 1))

    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, 3, self.crop_height, self.crop_width), dtype=np.float32)
        return np.stack([self.one(image) for image in images])

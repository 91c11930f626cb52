#!/usr/bin/env python3
"""Makes the Pillow reference outputs that tests/unit/preprocess checks the C++ preprocessing against.

Run with a Python that has Pillow 9.4 + numpy (Debian bookworm: apt-get install python3-pil
python3-numpy; /usr/bin/python3 make_pillow_refs.py). Writes, next to this script:
  src_*.png            input images (synthetic, deterministic)
  pillow_refs.safetensors
    convert/<name>     uint8 [H, W, 3]: HF convert_to_rgb(Image.open(src_<name>.png)) (alpha over white)
    resize/<W>x<H>     uint8 [H, W, 3]: Image.open(src_pattern.png).resize((W, H), BICUBIC)
    pipeline/resized   uint8 [32, 32, 3]: qwen3vl-tiny-a image.png resized by smart_resize with
                       min_pixels=1024, max_pixels=2048 (-> 32x32), Pillow bicubic
    pipeline/pixel_values float32 [4, 1536]: HF slow Qwen2VLImageProcessor steps on that, in numpy
No transformers code runs here; the HF steps are re-typed from its documented behaviour.
"""
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE_IMAGE = os.path.join(HERE, "..", "qwen3vl-tiny-a", "image.png")


def hf_convert_to_rgb(img):
    """transformers.image_transforms.convert_to_rgb."""
    if img.mode == "RGB":
        return img
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def write_png_16bit(path, arr, color_type):
    """Minimal PNG writer for 16-bit RGB (color_type 2) / RGBA (6); Pillow cannot write these."""
    h, w, c = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def pattern(w, h, rng):
    """Noise + hard edges + a gradient: stresses negative lobes, clamping and antialiasing."""
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    img[: h // 3, :, 0] = 255
    img[: h // 3, :, 1:] = 0
    img[:, w // 2 : w // 2 + 5, :] = 0
    img[h // 2 :, : w // 4, :] = np.linspace(0, 255, w // 4, dtype=np.uint8)[None, :, None]
    for i in range(0, w, 7):  # one-pixel vertical white lines
        img[h // 3 : h // 2, i, :] = 255
    return img


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32"}[a.dtype]
        data = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def hf_slow_pixel_values(resized_u8):
    """Qwen2VLImageProcessor._preprocess after resize: rescale (float64 product -> float32),
    normalize in float32, channels first, repeat to temporal_patch_size, patchify."""
    x = (resized_u8.astype(np.float64) * np.float64(0.00392156862745098)).astype(np.float32)
    mean = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    std = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    x = (x - mean) / std
    x = x.transpose(2, 0, 1)[None]  # [1, C, H, W]
    patches = np.tile(x, (2, 1, 1, 1))  # temporal_patch_size 2
    t, c, hh, ww = patches.shape
    p, m, tp = 16, 2, 2
    gh, gw = hh // p, ww // p
    patches = patches.reshape(t // tp, tp, c, gh // m, m, p, gw // m, m, p)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(gh * gw, c * tp * p * p)


def main():
    rng = np.random.default_rng(20251122)
    out = {}

    # ---- conversions
    rgb = pattern(23, 17, rng)
    alpha = rng.integers(0, 256, size=(17, 23), dtype=np.uint8)
    alpha[0, :] = 0
    alpha[1, :] = 255
    sources = {
        "rgb": Image.fromarray(rgb, "RGB"),
        "gray": Image.fromarray(rgb[:, :, 1], "L"),
        "rgba": Image.fromarray(np.dstack([rgb, alpha]), "RGBA"),
        "la": Image.fromarray(np.dstack([rgb[:, :, 0], alpha]), "LA"),
        "palette": Image.fromarray(rgb, "RGB").quantize(colors=16, method=Image.Quantize.MEDIANCUT),
    }
    trns = Image.fromarray(rgb, "RGB").quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    trns.info["transparency"] = 3
    sources["palette_trns"] = trns
    for name, img in sources.items():
        path = os.path.join(HERE, f"src_{name}.png")
        img.save(path, optimize=False)
        reread = Image.open(path)
        assert reread.mode == img.mode, (name, reread.mode, img.mode)
        out[f"convert/{name}"] = np.asarray(hf_convert_to_rgb(reread))

    rgb16 = rng.integers(0, 65536, size=(17, 23, 3), dtype=np.uint16)
    rgba16 = np.dstack([rgb16, (alpha.astype(np.uint16) << 8) | 0x5A])
    write_png_16bit(os.path.join(HERE, "src_rgb16.png"), rgb16, 2)
    write_png_16bit(os.path.join(HERE, "src_rgba16.png"), rgba16, 6)
    for name in ("rgb16", "rgba16"):
        img = Image.open(os.path.join(HERE, f"src_{name}.png"))
        out[f"convert/{name}"] = np.asarray(hf_convert_to_rgb(img))

    # ---- resizes of one pattern image (97 x 61): down, up, one axis only, extreme, mixed
    src = pattern(97, 61, rng)
    Image.fromarray(src, "RGB").save(os.path.join(HERE, "src_pattern.png"))
    src_img = Image.open(os.path.join(HERE, "src_pattern.png"))
    for w, h in [(33, 20), (97, 17), (40, 61), (7, 5), (3, 2), (1, 1), (131, 79), (40, 150), (96, 64)]:
        out[f"resize/{w}x{h}"] = np.asarray(src_img.resize((w, h), Image.BICUBIC))

    # ---- a downscale through the whole slow-processor path
    fixture = hf_convert_to_rgb(Image.open(FIXTURE_IMAGE))
    resized = np.asarray(fixture.resize((32, 32), Image.BICUBIC))
    out["pipeline/resized"] = resized
    out["pipeline/pixel_values"] = hf_slow_pixel_values(resized).astype(np.float32)

    save_safetensors(os.path.join(HERE, "pillow_refs.safetensors"), out)
    print("wrote", len(out), "tensors")


if __name__ == "__main__":
    main()

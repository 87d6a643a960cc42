"""image_decode: every PIL mode becomes 8-bit RGB by scaling, never clipping; image_folder
follows symlinked folders once and skips symlink loops with a warning."""
import logging
import os
import struct
import zlib

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from gem_jax.data.image_decode import read_rgb, to_rgb8
from gem_jax.data.image_folder import ImageFolder, list_images

# 16-bit values and round(v / 257), their proportional 8-bit values (x.498 rounds down, x.502 up)
WIDE = [0, 1, 128, 129, 257, 385, 386, 32767, 32768, 65278, 65535]
NARROW = [0, 0, 0, 1, 1, 1, 2, 127, 128, 254, 255]


def _grey(values) -> np.ndarray:
  """uint8 [..., 3] with each value copied to R, G and B."""
  return np.repeat(np.asarray(values, np.uint8)[..., None], 3, axis=-1)


def _gradient16() -> np.ndarray:
  """uint16 [16, 16]: 0, 257, 514, ..., 65535 row by row (8-bit value k is 257 * k)."""
  return (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)


def _png16_rgb(path, rgb16: np.ndarray) -> None:
  """Writes uint16 [H, W, 3] as a 16-bit-per-channel RGB PNG (PIL cannot write one)."""
  height, width, _ = rgb16.shape
  rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

  header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
  body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_16bit_png_scales_to_8bit(tmp_path):
  Image.fromarray(_gradient16()).save(tmp_path / "g.png")
  with Image.open(tmp_path / "g.png") as image:
    assert image.mode == "I;16"
  np.testing.assert_array_equal(read_rgb(tmp_path / "g.png"),
                                _grey(np.arange(256).reshape(16, 16)))
  Image.fromarray(np.array([WIDE], np.uint16)).save(tmp_path / "w.png")
  np.testing.assert_array_equal(read_rgb(tmp_path / "w.png"), _grey([NARROW]))


def test_16bit_big_endian_and_int32_modes():
  big = Image.frombytes("I;16B", (len(WIDE), 1), np.array(WIDE, ">u2").tobytes())
  np.testing.assert_array_equal(to_rgb8(big), _grey([NARROW]))
  as_int = Image.fromarray(np.array([WIDE], np.int32))
  assert as_int.mode == "I"
  np.testing.assert_array_equal(to_rgb8(as_int), _grey([NARROW]))
  with pytest.raises(ValueError, match=r"'I' image has values -5\.\.70000, outside"):
    to_rgb8(Image.fromarray(np.array([[-5, 70000]], np.int32)))


def test_16bit_rgb_png_keeps_the_high_byte(tmp_path):
  rgb16 = np.zeros((1, 4, 3), np.uint16)
  rgb16[0, :, 0] = [0, 1000, 32768, 65535]
  rgb16[0, :, 2] = [65280, 256, 255, 40000]
  _png16_rgb(tmp_path / "rgb16.png", rgb16)
  np.testing.assert_array_equal(read_rgb(tmp_path / "rgb16.png"), (rgb16 >> 8).astype(np.uint8))


def test_palette_with_transparency(tmp_path):
  image = Image.new("P", (3, 1))
  image.putpalette([255, 0, 0, 0, 0, 255, 0, 128, 0] + [0] * 759)
  image.putdata([0, 1, 2])
  image.save(tmp_path / "p.png", transparency=1)  # blue is the transparent entry
  with Image.open(tmp_path / "p.png") as back:
    assert back.mode == "P"
  np.testing.assert_array_equal(read_rgb(tmp_path / "p.png"),
                                [[[255, 0, 0], [255, 255, 255], [0, 128, 0]]])
  image.save(tmp_path / "opaque.png")
  np.testing.assert_array_equal(read_rgb(tmp_path / "opaque.png"),
                                [[[255, 0, 0], [0, 0, 255], [0, 128, 0]]])


def test_alpha_is_composited_on_white_or_a_given_background(tmp_path):
  grey = Image.frombytes("LA", (3, 1), bytes([100, 0, 100, 255, 100, 128]))
  grey.save(tmp_path / "la.png")
  # 100 * a + 255 * (1 - a): a = 0 -> 255, a = 1 -> 100, a = 128/255 -> 177.196 -> 177
  np.testing.assert_array_equal(read_rgb(tmp_path / "la.png"), _grey([[255, 100, 177]]))
  rgba = Image.new("RGBA", (1, 1), (200, 0, 50, 51))  # a = 0.2
  rgba.save(tmp_path / "rgba.png")
  np.testing.assert_array_equal(read_rgb(tmp_path / "rgba.png"), [[[244, 204, 214]]])
  np.testing.assert_array_equal(to_rgb8(rgba, background=(0, 0, 0)), [[[40, 0, 10]]])
  opaque = Image.new("RGBA", (1, 1), (7, 8, 9, 255))
  np.testing.assert_array_equal(to_rgb8(opaque), [[[7, 8, 9]]])


def test_cmyk_is_converted_multiplicatively(tmp_path):
  cmyk = Image.new("CMYK", (4, 1))
  cmyk.putdata([(0, 0, 0, 0), (0, 0, 0, 255), (255, 255, 255, 0), (100, 50, 0, 60)])
  # (255 - C) * (255 - K) / 255: 155 * 195 / 255 = 118.53 -> 119, 205 * 195 / 255 = 156.76 -> 157
  want = [[[255, 255, 255], [0, 0, 0], [0, 0, 0], [119, 157, 195]]]
  np.testing.assert_array_equal(to_rgb8(cmyk), want)
  Image.new("CMYK", (16, 16), (100, 50, 0, 60)).save(tmp_path / "c.jpg", quality=100)
  decoded = read_rgb(tmp_path / "c.jpg").astype(int)  # JPEG: within a few levels
  assert np.abs(decoded - [119, 157, 195]).max() <= 3


def test_unsupported_mode_is_named():
  with pytest.raises(ValueError, match="unsupported PIL image mode 'F'"):
    to_rgb8(Image.new("F", (1, 1)))


def _folder_with_links(tmp_path):
  """root/{real/a.png, alias -> real, ext -> outside/, sub/{c.png, up -> root, self -> .}}."""
  root, outside = tmp_path / "root", tmp_path / "outside"
  for folder in (root / "real", root / "sub", outside):
    folder.mkdir(parents=True)
  for path in (root / "real" / "a.png", root / "sub" / "c.png", outside / "b.png"):
    Image.new("RGB", (8, 8), (40, 80, 120)).save(path)
  os.symlink(root / "real", root / "alias")
  os.symlink(outside, root / "ext")
  os.symlink(root, root / "sub" / "up")
  os.symlink(".", root / "sub" / "self")
  return root


def test_symlinked_folders_read_once_and_loops_skipped(tmp_path):
  root = _folder_with_links(tmp_path)
  with pytest.warns(UserWarning) as caught:
    files = list_images(root)
  assert files == ["ext/b.png", "real/a.png", "sub/c.png"]
  messages = sorted(str(w.message) for w in caught)
  assert len(messages) == 3
  assert "skipping 'alias': that folder is already read as 'real'" in messages[0]
  assert "skipping 'sub/self': it points at its ancestor 'sub' (a symlink loop)" in messages[1]
  assert "skipping 'sub/up': it points at its ancestor '.' (a symlink loop)" in messages[2]


def test_builder_reads_16bit_and_linked_images(tmp_path, caplog):
  root = _folder_with_links(tmp_path)
  Image.fromarray(_gradient16()).save(root / "real" / "g16.png")
  builder = ImageFolder(root=root, size=16, data_dir=str(tmp_path / "tfds"))
  with pytest.warns(UserWarning) as caught:
    with caplog.at_level(logging.INFO, logger="gem_jax.data"):
      builder.download_and_prepare()
  assert sum("symlink loop" in str(w.message) for w in caught) == 2
  images = {}
  for split in builder.info.splits:
    data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    pairs = zip(data["filename"], data["image"], strict=True)
    images.update({f.decode(): image for f, image in pairs})
  assert sorted(images) == ["ext/b.png", "real/a.png", "real/g16.png", "sub/c.png"]
  np.testing.assert_array_equal(images["real/g16.png"], _grey(np.arange(256).reshape(16, 16)))
  assert "1 image(s) of PIL mode I;16 decoded to 8-bit RGB (16-bit grey scaled" in caplog.text

"""image_folder: any folder of images, bad files reported by name, one prepared copy per folder."""
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from gem_jax.data.errors import DataNotFoundError
from gem_jax.data.image_folder import (
  ImageFolder,
  UnreadableImageError,
  config_name,
  image_folder_builder,
  split_files,
)

GOOD = {  # relative path -> (width, height)
    "a.png": (100, 80),
    "sub/b.jpg": (300, 200),
    "sub/deeper/C.JPG": (64, 64),
    "d.jpeg": (50, 120),
    "e.webp": (90, 90),
}


def _bands(width: int, height: int) -> Image.Image:
  """Red | green | blue vertical bands (green is the centre third)."""
  pixels = np.zeros((height, width, 3), np.uint8)
  pixels[:, : width // 3, 0] = 255
  pixels[:, width // 3: 2 * width - 2 * width // 3, 1] = 255
  pixels[:, 2 * width - 2 * width // 3:, 2] = 255
  return Image.fromarray(pixels)


def write_folder(root, bad=("broken.png",)):
  """Writes GOOD images, the given corrupt files and a non-image file under root."""
  for rel, (width, height) in GOOD.items():
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    image = _bands(width, height) if rel == "sub/b.jpg" else Image.new(
        "RGB", (width, height), (10 * len(rel), 100, 200))
    image.save(root / rel, quality=95)
  for rel in bad:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
  (root / "notes.txt").write_text("not an image")
  return root


def _all(builder):
  out = {}
  for split in builder.info.splits:
    data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    pairs = zip(data["filename"], data["image"], strict=True)
    out.update({f.decode(): image for f, image in pairs})
  return out


def test_corrupt_files_are_named_together(tmp_path):
  root = write_folder(tmp_path / "imgs", bad=("broken.png", "sub/zz_bad.jpg"))
  builder = ImageFolder(root=root, data_dir=str(tmp_path / "tfds"))
  with pytest.raises(UnreadableImageError,
                     match=r"2 unreadable image\(s\)(.|\n)*broken\.png(.|\n)*sub/zz_bad\.jpg"):
    builder.download_and_prepare()


def test_skip_bad_loads_the_others(tmp_path):
  root = write_folder(tmp_path / "imgs")
  config = ml_collections.ConfigDict({"image_dir": str(root), "image_size": 64,
                                      "data_dir": str(tmp_path / "tfds"), "skip_bad": True})
  with pytest.warns(UserWarning, match=r"skipped 1 unreadable(.|\n)*broken\.png"):
    builder = image_folder_builder(config)
  images = _all(builder)
  assert sorted(images) == sorted(GOOD)
  assert builder.info.splits["test"].num_examples == 1
  assert all(image.shape == (64, 64, 3) and image.dtype == np.uint8 for image in images.values())
  centre = images["sub/b.jpg"]  # 300x200 bands: the centred 200x200 square is mostly green
  assert centre[:, 24:40, 1].min() > 200 and centre[:, 24:40, 0].max() < 40
  assert centre[:, :4, 0].mean() > 200  # and a little red at the left edge


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "readme.txt").write_text("no images here")
  with pytest.raises(DataNotFoundError, match="no images .* under .*empty"):
    ImageFolder(root=tmp_path / "empty", data_dir=str(tmp_path / "tfds")).download_and_prepare()
  with pytest.raises(DataNotFoundError, match="does not exist"):
    ImageFolder(root=tmp_path / "nope", data_dir=str(tmp_path / "tfds")).download_and_prepare()


def test_two_folders_do_not_collide(tmp_path):
  data_dir = str(tmp_path / "tfds")
  roots = [tmp_path / "a" / "imgs", tmp_path / "b" / "imgs"]  # same base name
  for k, root in enumerate(roots):
    root.mkdir(parents=True)
    for i in range(3):
      Image.new("RGB", (40, 30), (80 * k, 0, 0)).save(root / f"{k}_{i}.png")
  builders = [ImageFolder(root=root, size=32, data_dir=data_dir) for root in roots]
  assert builders[0].builder_config.name != builders[1].builder_config.name
  assert builders[0].builder_config.name.startswith("imgs-")
  for builder in builders:
    builder.download_and_prepare()
  names = [sorted(_all(b)) for b in builders]
  assert names == [["0_0.png", "0_1.png", "0_2.png"], ["1_0.png", "1_1.png", "1_2.png"]]
  again = ImageFolder(root=roots[1], size=32, data_dir=data_dir)  # reuses the prepared copy
  assert again.is_prepared() and sorted(_all(again)) == names[1]
  assert config_name(roots[0], 64) != config_name(roots[0], 32)


def test_split_is_deterministic_and_never_empty():
  files = [f"img_{i:03d}.png" for i in range(100)]
  splits = split_files(files, 0.05)
  assert len(splits["test"]) == 5 and len(splits["train"]) == 95
  assert sorted(split_files(files[::-1], 0.05)["test"]) == sorted(splits["test"])
  assert set(split_files(files[:2], 0.05)) == {"train", "test"}
  assert split_files(files[:1], 0.05) == {"train": files[:1]}

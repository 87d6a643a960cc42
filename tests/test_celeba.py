"""CelebA: official-format parsing, the landmark crop, GEM labels and the celeba_local builder.

No download: a tiny folder in the official aligned layout is written to tmp_path.
"""
import io
import logging
import re
import shutil

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image, ImageDraw

from gem_jax.data import celeba
from gem_jax.data.celeba_builder import (
  CelebaLocal,
  builder_config_name,
  celeba_builder,
  read_tables,
)
from gem_jax.data.celeba_files import REQUIRED
from gem_jax.data.errors import DataNotFoundError
from gem_jax.data.image_folder import UnreadableImageError

WIDTH, HEIGHT = 178, 218
BASE_LANDMARKS = np.array([69, 109, 106, 113, 77, 142, 73, 152, 108, 154])  # 000001.jpg
# Face shifts (dx, dy) per image; the last two push the crop box past the image border.
SHIFTS = [(0, 0), (12, -6), (-12, 8), (5, 5), (-60, 0), (0, 60)]
PARTITION = [0, 0, 0, 1, 1, 2]
MARKER = (255, 0, 0)


def _name(i: int) -> str:
  return f"{i + 1:06d}.jpg"


def _landmarks(i: int) -> np.ndarray:
  dx, dy = SHIFTS[i]
  return BASE_LANDMARKS + np.tile([dx, dy], 5)


def _attributes(n: int) -> np.ndarray:
  """int [n, 40] in +-1; row 0 has No_Beard = 1, row 1 No_Beard = -1."""
  table = np.where(np.random.default_rng(0).random((n, 40)) < 0.5, -1, 1)
  table[0, celeba.ATTRIBUTE_NAMES.index("No_Beard")] = 1
  table[1, celeba.ATTRIBUTE_NAMES.index("No_Beard")] = -1
  return table


def _face(landmarks: np.ndarray) -> Image.Image:
  """A 178x218 face: dark eyes and mouth at the landmarks, a red dot at the crop centre."""
  image = Image.new("RGB", (WIDTH, HEIGHT), (200, 180, 160))
  draw = ImageDraw.Draw(image)
  points = landmarks.reshape(5, 2)
  for x, y in points[[0, 1]]:
    draw.ellipse((x - 4, y - 3, x + 4, y + 3), fill=(20, 20, 20))
  draw.line([tuple(points[3]), tuple(points[4])], fill=(90, 10, 10), width=3)
  cx, cy, _ = celeba.crop_box(landmarks)
  draw.rectangle((cx - 3, cy - 3, cx + 3, cy + 3), fill=MARKER)
  return image


def write_fake_celeba(root, n: int = 6):
  """Writes the four official entries for n images; returns (attributes +-1 [n, 40])."""
  (root / "img_align_celeba").mkdir(parents=True)
  attributes = _attributes(n)
  for i in range(n):
    _face(_landmarks(i)).save(root / "img_align_celeba" / _name(i), quality=95)
  attr_lines = [str(n), " ".join(celeba.ATTRIBUTE_NAMES) + " "]
  attr_lines += [_name(i) + " " + " ".join(f"{v:2d}" for v in attributes[i]) for i in range(n)]
  mark_lines = [str(n), " ".join(celeba.LANDMARK_NAMES)]
  mark_lines += [f"{_name(i):<10}" + "".join(f"{v:5d}" for v in _landmarks(i)) for i in range(n)]
  (root / "list_attr_celeba.txt").write_text("\n".join(attr_lines) + "\n")
  (root / "list_landmarks_align_celeba.txt").write_text("\n".join(mark_lines) + "\n")
  (root / "list_eval_partition.txt").write_text(
      "".join(f"{_name(i)} {PARTITION[i]}\n" for i in range(n)))
  return attributes


def _data_config(celeba_dir, data_dir, config="default"):
  c = ml_collections.ConfigDict()
  c.name, c.config, c.data_dir, c.celeba_dir = "celeba", config, str(data_dir), str(celeba_dir)
  return c


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
  root = tmp_path_factory.mktemp("celeba")
  return root, write_fake_celeba(root)


@pytest.fixture(scope="module")
def built(fake, tmp_path_factory):
  root, attributes = fake
  builder = celeba_builder(_data_config(root, tmp_path_factory.mktemp("tfds")))
  return builder, attributes


def _split(builder, split):
  ds = builder.as_dataset(split=split, shuffle_files=False, batch_size=-1)
  return tfds.as_numpy(ds)


# ---------------------------------------------------------------------------- parsing

def test_readers_parse_the_official_files(fake):
  root, attributes = fake
  names, table = celeba.read_attributes(root / "list_attr_celeba.txt")
  assert tuple(names) == celeba.ATTRIBUTE_NAMES and len(table) == 6
  assert table["000002.jpg"].dtype == np.int8
  np.testing.assert_array_equal(table["000002.jpg"], attributes[1])
  marks = celeba.read_landmarks(root / "list_landmarks_align_celeba.txt")
  np.testing.assert_array_equal(marks["000001.jpg"], BASE_LANDMARKS)
  assert celeba.read_partition(root / "list_eval_partition.txt") == {
      _name(i): p for i, p in enumerate(PARTITION)}


def test_readers_accept_crlf_and_variable_spacing(tmp_path):
  path = tmp_path / "list_landmarks_align_celeba.txt"
  path.write_bytes(b"1\r\n" + " ".join(celeba.LANDMARK_NAMES).encode() +
                   b" \r\n000001.jpg    69  109  106  113   77  142   73  152  108  154\r\n")
  np.testing.assert_array_equal(celeba.read_landmarks(path)["000001.jpg"], BASE_LANDMARKS)


def test_malformed_attribute_line_names_file_and_line(tmp_path):
  root = tmp_path / "celeba"
  write_fake_celeba(root)
  path = root / "list_attr_celeba.txt"
  lines = path.read_text().splitlines()
  lines[3] = lines[3].rsplit(" ", 1)[0]  # 000002.jpg with 39 values
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(celeba.CelebaFormatError, match=r"list_attr_celeba\.txt:4: expected"):
    celeba.read_attributes(path)
  lines[3] = lines[3] + "  0"  # 40 values again, one of them not +-1
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(celeba.CelebaFormatError, match=r"list_attr_celeba\.txt:4: values"):
    celeba.read_attributes(path)


def test_wrong_count_line_is_an_error(tmp_path):
  path = tmp_path / "list_attr_celeba.txt"
  path.write_text("3\n" + " ".join(celeba.ATTRIBUTE_NAMES) + "\n000001.jpg" + " 1" * 40 + "\n")
  with pytest.raises(celeba.CelebaFormatError, match="announces 3 images but 1 rows"):
    celeba.read_attributes(path)


# ---------------------------------------------------------------------------- labels and crop

def test_gem_labels_derive_beard_from_no_beard():
  rows = _attributes(2)
  labels = celeba.gem_labels(rows, celeba.ATTRIBUTE_NAMES)
  assert labels.shape == (2, 6) and labels.dtype == np.int32
  beard = celeba.GEM_ATTRIBUTES.index("Beard")
  assert labels[0, beard] == 0 and labels[1, beard] == 1
  for k, name in enumerate(celeba.GEM_ATTRIBUTES):
    if name != "Beard":
      np.testing.assert_array_equal(labels[:, k], rows[:, celeba.ATTRIBUTE_NAMES.index(name)] > 0)
  np.testing.assert_array_equal(celeba.gem_labels((rows > 0).astype(np.int8),
                                                  celeba.ATTRIBUTE_NAMES), labels)


def test_unknown_attribute_lists_the_valid_names():
  with pytest.raises(ValueError, match=r"unknown CelebA attribute\(s\) 'Smile'.*Smiling.*Beard"):
    celeba.gem_labels(np.ones(40), celeba.ATTRIBUTE_NAMES, ["Bangs", "Smile"])


def test_landmark_crop_centres_the_face_and_pads_at_the_border():
  for i in range(len(SHIFTS)):
    crop = celeba.landmark_crop(np.asarray(_face(_landmarks(i))), _landmarks(i), size=64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    red = (crop[..., 0] > 180) & (crop[..., 1] < 90) & (crop[..., 2] < 90)
    ys, xs = np.nonzero(red)
    assert abs(xs.mean() - 31.5) < 1.5 and abs(ys.mean() - 31.5) < 1.5, (i, xs.mean(), ys.mean())
  big = celeba.landmark_crop(np.asarray(_face(BASE_LANDMARKS)), BASE_LANDMARKS, size=256)
  assert big.shape == (256, 256, 3)


def test_crop_box_constants():
  cx, cy, side = celeba.crop_box(BASE_LANDMARKS)
  eyes, mouth = np.array([87.5, 111.0]), np.array([90.5, 153.0])
  distance = np.linalg.norm(mouth - eyes)
  assert side == pytest.approx(celeba.CROP_SCALE * distance)  # ~147 px
  assert (cx, cy) == pytest.approx(((eyes + mouth) / 2) - [0, celeba.CENTER_SHIFT * distance])


# ---------------------------------------------------------------------------- builder

def test_builder_splits_shapes_and_labels(built):
  builder, attributes = built
  assert builder.name == "celeba_local" and builder.builder_config.name == "crop64"
  assert {s: builder.info.splits[s].num_examples for s in ("train", "validation", "test")} == {
      "train": 3, "validation": 2, "test": 1}
  seen = {}
  for split in ("train", "validation", "test"):
    data = _split(builder, split)
    assert data["image"].shape[1:] == (64, 64, 3) and data["image"].dtype == np.uint8
    for k, filename in enumerate(data["filename"]):
      seen[filename.decode()] = {key: value[k] for key, value in data.items()}
  assert sorted(seen) == [_name(i) for i in range(6)]
  for i in range(6):
    ex = seen[_name(i)]
    assert ex["attributes"].dtype == np.int8
    np.testing.assert_array_equal(ex["attributes"], attributes[i] > 0)
    np.testing.assert_array_equal(ex["landmarks"], _landmarks(i))
    np.testing.assert_array_equal(ex["gem_labels"],
                                  celeba.gem_labels(attributes[i], celeba.ATTRIBUTE_NAMES))
    red = (ex["image"][..., 0] > 180) & (ex["image"][..., 1] < 90)
    ys, xs = np.nonzero(red)
    assert abs(xs.mean() - 31.5) < 2 and abs(ys.mean() - 31.5) < 2
  no_beard = celeba.ATTRIBUTE_NAMES.index("No_Beard")
  beard = celeba.GEM_ATTRIBUTES.index("Beard")
  assert all(seen[f]["gem_labels"][beard] == 1 - seen[f]["attributes"][no_beard] for f in seen)


def test_prepared_builder_is_reused_without_the_folder(built, fake, tmp_path, caplog):
  builder, _ = built
  data_dir = builder.data_dir_root
  with caplog.at_level(logging.INFO, logger="gem_jax.data"):
    again = celeba_builder(_data_config(tmp_path / "nowhere", data_dir))
  assert again.is_prepared() and again.info.splits["train"].num_examples == 3
  reuse = [r for r in caplog.records if "using the prepared copy" in r.getMessage()]
  assert len(reuse) == 1 and reuse[0].levelno == logging.WARNING
  message = reuse[0].getMessage()
  assert str(again.data_dir) in message and f"built from {fake[0]}" in message
  assert f"celeba_dir={tmp_path / 'nowhere'} is not read" in message
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="gem_jax.data"):
    celeba_builder(_data_config(fake[0], data_dir))  # the folder it was built from: info only
  assert [r.levelno for r in caplog.records if "using the prepared copy" in r.getMessage()] == [
      logging.INFO]


def test_crop256_config(fake, tmp_path):
  root, _ = fake
  builder = CelebaLocal(config="crop256", data_dir=str(tmp_path), celeba_dir=str(root))
  builder.download_and_prepare()
  assert _split(builder, "test")["image"].shape == (1, 256, 256, 3)


def test_manual_dir_is_a_source(fake, tmp_path):
  root, _ = fake
  builder = CelebaLocal(data_dir=str(tmp_path))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
  assert builder.info.splits["validation"].num_examples == 2


@pytest.mark.parametrize("entry", REQUIRED)
def test_each_missing_entry_is_named(fake, tmp_path, entry):
  root = tmp_path / "celeba"
  shutil.copytree(fake[0], root)
  (shutil.rmtree if entry == "img_align_celeba" else lambda p: p.unlink())(root / entry)
  with pytest.raises(DataNotFoundError, match=re.escape(f"missing {entry} in {root}")):
    celeba_builder(_data_config(root, tmp_path / "tfds"))


def test_missing_image_is_named(fake, tmp_path):
  root = tmp_path / "celeba"
  shutil.copytree(fake[0], root)
  (root / "img_align_celeba" / "000003.jpg").unlink()
  (root / "img_align_celeba" / "000005.jpg").unlink()
  with pytest.raises(FileNotFoundError, match=r"2 of the 6 images .* 000003\.jpg, 000005\.jpg"):
    read_tables(root)
  with pytest.raises(FileNotFoundError, match="000003.jpg"):
    celeba_builder(_data_config(root, tmp_path / "tfds"))


def test_corrupt_jpeg_is_named(fake, tmp_path):
  root = tmp_path / "celeba"
  shutil.copytree(fake[0], root)
  path = root / "img_align_celeba" / "000002.jpg"
  path.write_bytes(path.read_bytes()[:300])  # truncated
  with pytest.raises(UnreadableImageError, match=r"000002\.jpg"):
    celeba_builder(_data_config(root, tmp_path / "tfds"))


def test_unknown_config_is_listed():
  assert builder_config_name("default") == "crop64"
  with pytest.raises(ValueError, match="crop64, crop256"):
    builder_config_name("crop128")


def _prepare_fake_celeb_a(root, data_dir, monkeypatch):
  """Prepares tfds's own celeb_a from the fake folder, its downloads replaced by local files."""
  (root / "identity_CelebA.txt").write_text(
      "".join(f"{_name(i)} {100 + i}\n" for i in range(len(PARTITION))))
  files = {"img_align_celeba": root / "img_align_celeba",
           "list_eval_partition": root / "list_eval_partition.txt",
           "list_attr_celeba": root / "list_attr_celeba.txt",
           "landmarks_celeba": root / "list_landmarks_align_celeba.txt",
           "identity_celeba": root / "identity_CelebA.txt"}

  def iter_archive(self, folder):  # celeb_a keeps every file object: give it bytes
    for path in sorted(folder.iterdir()):
      yield str(path), io.BytesIO(path.read_bytes())

  monkeypatch.setattr(tfds.download.DownloadManager, "download",
                      lambda self, urls: {k: files[k] for k in urls})
  monkeypatch.setattr(tfds.download.DownloadManager, "iter_archive", iter_archive)
  tfds.builder("celeb_a", data_dir=str(data_dir)).download_and_prepare()


def test_prepared_tfds_celeb_a_is_converted(fake, tmp_path, monkeypatch):
  root = tmp_path / "celeba"
  shutil.copytree(fake[0], root)
  _prepare_fake_celeb_a(root, tmp_path / "tfds", monkeypatch)
  config = _data_config(root, tmp_path / "tfds")
  config.celeba_dir = None  # unset: a prepared celeb_a comes before $CELEBA_DIR
  builder = celeba_builder(config)
  assert builder.info.metadata["source"].startswith("tfds celeb_a")
  assert {s: builder.info.splits[s].num_examples for s in ("train", "validation", "test")} == {
      "train": 3, "validation": 2, "test": 1}
  data = _split(builder, "train")
  assert all(f.startswith(b"celeb_a:celeb_a-train") for f in data["filename"])
  by_landmarks = {tuple(_landmarks(i)): i for i in range(6)}
  attributes = fake[1]
  for k, marks in enumerate(data["landmarks"]):
    i = by_landmarks[tuple(marks)]
    assert PARTITION[i] == 0
    np.testing.assert_array_equal(data["attributes"][k], attributes[i] > 0)
    ys, xs = np.nonzero((data["image"][k][..., 0] > 180) & (data["image"][k][..., 1] < 90))
    assert abs(xs.mean() - 31.5) < 2 and abs(ys.mean() - 31.5) < 2

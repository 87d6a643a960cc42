"""tfds + tf.data input pipeline: deterministic, resumable, sharded per device and process.

Batches come out as numpy dicts: 'image' uint8 [num_devices, per_device_batch, H, W, 3] and,
when a label key is given, 'labels' [num_devices, per_device_batch, ...] (that feature).
The order of examples is a pure function of (seed, step): each epoch is shuffled with a
seed derived from (seed, epoch), so a run resumed at step s sees exactly the batches it
would have seen, at the cost of skipping less than one epoch of examples. In a multi-process
run every process reads the same global stream and keeps its own rows of each global batch
(process p: rows p * B / P .. (p + 1) * B / P), so the global batch, and with it the update,
does not depend on how many processes share it; each process decodes the whole split.
"""
from __future__ import annotations

from typing import Iterator

import jax
import numpy as np

from gem_jax.data.data_dir import default_data_dir  # noqa: F401 (re-exported)
from gem_jax.data.registry import get_builder
from gem_jax.data.tf_cpu import tensorflow, tensorflow_datasets
from gem_jax.data.validation import carved_size, split_spec


def _check_image_spec(builder, image_size: int) -> None:
  shape = tuple(builder.info.features["image"].shape)
  dtype = np.dtype(builder.info.features["image"].np_dtype)
  if shape != (image_size, image_size, 3) or dtype != np.uint8:
    raise ValueError(f"data set {builder.name!r} yields images of shape {shape} and dtype "
                     f"{dtype}; the model expects uint8 ({image_size}, {image_size}, 3). "
                     "Set config.model.image_size to match or choose another data config.")


def _check_label_key(builder, label_key: str) -> None:
  features = builder.info.features
  if label_key not in features or label_key == "image":
    names = ", ".join(k for k in features.keys() if k != "image")
    raise ValueError(f"config.data.label_key={label_key!r} is not a label of data set "
                     f"{builder.name!r}; its labels: {names}")


def split_size(data_config, split: str | None = None) -> int:
  """Examples in a split of config.data (default: config.data.split), over all processes;
  'validation' is carved from the training split where the data set has none
  (gem_jax/data/validation.py)."""
  split = split or data_config.split
  carved = carved_size(data_config, split)
  if carved is not None:
    return carved
  return int(get_builder(data_config).info.splits[split].num_examples)


def make_train_iterator(data_config, *, global_batch: int, num_devices: int, seed: int,
                        start_step: int = 0, image_size: int = 64,
                        label_key: str | None = None) -> Iterator[dict]:
  """Endless iterator of training batches for this process.

  Args:
    data_config: config.data (name, config, data_dir, split, shuffle_buffer).
    global_batch: examples per step over all processes; must divide by the device count.
    num_devices: local devices this process's rows of the global batch are split over.
    seed: shuffle seed.
    start_step: steps already taken (for resume): the stream starts where it left off.
    label_key: a feature of the data set (e.g. 'attributes') to feed as 'labels'; None: images
      only.
  Yields:
    {'image': uint8 [num_devices, per_device_batch, H, W, 3]} and, with a label key,
    'labels' [num_devices, per_device_batch, *label_shape] in the feature's dtype.
  """
  processes, index = jax.process_count(), jax.process_index()
  if global_batch % (processes * num_devices):
    raise ValueError(f"batch size {global_batch} does not divide over "
                     f"{processes * num_devices} devices")
  tf, tfds = tensorflow(), tensorflow_datasets()
  builder = get_builder(data_config)
  _check_image_spec(builder, image_size)
  keys = {"image": "image"}
  if label_key:
    _check_label_key(builder, label_key)
    keys["labels"] = label_key
  base = builder.as_dataset(split=data_config.split, shuffle_files=False)
  base = base.map(lambda ex: {out: ex[key] for out, key in keys.items()},
                  num_parallel_calls=tf.data.AUTOTUNE)
  base = base.cache()
  epoch_size = int(base.cardinality().numpy())
  start_epoch, skip = divmod(start_step * global_batch, epoch_size)
  buffer = min(data_config.shuffle_buffer, epoch_size)

  def epoch(e):
    return base.shuffle(buffer, seed=tf.cast(seed, tf.int64) * 100_003 + e,
                        reshuffle_each_iteration=False)

  ds = tf.data.Dataset.range(start_epoch, np.iinfo(np.int64).max).flat_map(epoch)
  ds = ds.skip(skip).batch(global_batch, drop_remainder=True)
  process_batch = global_batch // processes
  per_device = process_batch // num_devices
  rows = slice(index * process_batch, (index + 1) * process_batch)
  ds = ds.map(lambda b: {k: tf.reshape(v[rows], (num_devices, per_device, *v.shape[1:]))
                         for k, v in b.items()})
  return iter(tfds.as_numpy(ds.prefetch(tf.data.AUTOTUNE)))


def load_examples(data_config, split: str, num_examples: int | None = None) -> dict:
  """The first `num_examples` of a split as numpy arrays (images uint8 [N, H, W, 3] and
  whatever labels the data set has, e.g. attributes int32 [N, n]). 'validation' is the data
  set's own split, or the last config.data.validation_images of the training split
  (gem_jax/data/validation.py)."""
  builder = get_builder(data_config)
  spec = split_spec(data_config, split, num_examples)
  ds = builder.as_dataset(split=spec, shuffle_files=False, batch_size=-1)
  return {k: np.asarray(v) for k, v in tensorflow_datasets().as_numpy(ds).items()}

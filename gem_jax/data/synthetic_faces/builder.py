"""tfds builder for `synthetic_faces`: cartoon faces from a known SCM, generated offline.

Importing this module (done by `import gem_jax.data`) registers the builder, so afterwards

    tfds.builder("synthetic_faces/tiny", data_dir=...).download_and_prepare()

works without any download. Each split is `synthetic_faces.generate(seed, n)` for the split's
seed (`SyntheticFacesConfig.split_seed`), so a prepared data set equals a direct call.
The SCM, its true relation graph and the drawing are documented in docs/synthetic_faces.md.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from gem_jax.data.synthetic_faces.render import IMAGE_SIZE, render
from gem_jax.data.synthetic_faces.scm import (
  ATTRIBUTES,
  FACTOR_NAMES,
  NUISANCE,
  TRUE_GRAPH,
  sample_factors,
)
from gem_jax.data.tf_cpu import tensorflow_datasets

tfds = tensorflow_datasets()  # the builder classes below subclass tfds types

SPLITS: tuple[str, ...] = ("train", "test")
# Images rendered per numpy pass while writing; memory is ~1 MB per 64 images.
_GENERATE_BATCH = 1024


@dataclasses.dataclass(eq=False)
class SyntheticFacesConfig(tfds.core.BuilderConfig):
  """Sizes and seed of one `synthetic_faces` variant.

  Attributes:
    num_train: examples in `train`.
    num_test: examples in `test`.
    seed: base seed; `train` uses `seed`, `test` uses `seed + 1` (disjoint streams).
  """

  num_train: int = 60_000
  num_test: int = 10_000
  seed: int = 0

  def split_seed(self, split: str) -> int:
    """Seed passed to `synthetic_faces.generate` for `split` ("train" or "test")."""
    return self.seed + SPLITS.index(split)

  def split_size(self, split: str) -> int:
    """Number of examples of `split`."""
    return {"train": self.num_train, "test": self.num_test}[split]


class SyntheticFaces(tfds.core.GeneratorBasedBuilder):
  """Cartoon faces with six graded attributes drawn from a structural causal model."""

  name = "synthetic_faces"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      SyntheticFacesConfig(
          name="default",
          description="60,000 train / 10,000 test images.",
          num_train=60_000,
          num_test=10_000,
          seed=0,
      ),
      SyntheticFacesConfig(
          name="small",
          description="5,000 train / 1,000 test images.",
          num_train=5_000,
          num_test=1_000,
          seed=0,
      ),
      SyntheticFacesConfig(
          name="tiny",
          description="512 train / 128 test images, for tests and notebooks.",
          num_train=512,
          num_test=128,
          seed=0,
      ),
  ]
  DEFAULT_CONFIG_NAME = "default"

  def _info(self) -> tfds.core.DatasetInfo:
    graph = ", ".join(
        f"{ATTRIBUTES[i]}->{ATTRIBUTES[j]} {TRUE_GRAPH[i, j]:+.1f}"
        for i, j in zip(*np.nonzero(TRUE_GRAPH))
    )
    return self.dataset_info_from_configs(
        description=(
            "Synthetic cartoon faces (64x64 RGB) rendered offline from a small linear "
            "structural causal model over the GEM paper's six attributes "
            f"{', '.join(ATTRIBUTES)} (integer intensities 0..5), plus independent "
            f"nuisance factors {', '.join(NUISANCE)}. True relation graph: {graph}. "
            "See docs/synthetic_faces.md for the equations and the drawing."
        ),
        features=tfds.features.FeaturesDict(
            {
                "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                "attributes": tfds.features.Tensor(shape=(len(ATTRIBUTES),), dtype=np.int32),
                "factors": tfds.features.Tensor(shape=(len(FACTOR_NAMES),), dtype=np.float32),
                "index": tfds.features.Scalar(dtype=np.int64),
            }
        ),
        supervised_keys=None,
        homepage="docs/synthetic_faces.md",
        metadata=tfds.core.MetadataDict(
            attributes=list(ATTRIBUTES),
            factor_names=list(FACTOR_NAMES),
            true_graph=[[round(float(w), 6) for w in row] for row in TRUE_GRAPH],
            split_seeds={s: self.builder_config.split_seed(s) for s in SPLITS},
        ),
    )

  def _split_generators(self, dl_manager):
    """No download: both splits are rendered from their seeds."""
    del dl_manager
    config = self.builder_config
    return {
        split: self._generate_examples(
            seed=config.split_seed(split), num_examples=config.split_size(split)
        )
        for split in SPLITS
    }

  def _generate_examples(self, seed: int, num_examples: int):
    """Yields (index, example); factors are sampled at once, images in batches."""
    attributes, factors = sample_factors(seed, num_examples)
    for start in range(0, num_examples, _GENERATE_BATCH):
      stop = min(start + _GENERATE_BATCH, num_examples)
      images = render(attributes[start:stop], factors[start:stop])
      for offset, image in enumerate(images):
        index = start + offset
        yield index, {
            "image": image,
            "attributes": attributes[index],
            "factors": factors[index],
            "index": index,
        }


def synthetic_faces_builder(data_config) -> SyntheticFaces:
  """A prepared `synthetic_faces` builder for config.data (the registry's entry).

  Reads data_config.config ('default' | 'small' | 'tiny') and data_config.data_dir (default
  $TFDS_DATA_DIR or ~/tensorflow_datasets). Renders offline on first use; no download.
  """
  data_dir = os.path.expanduser(data_config.data_dir) if data_config.data_dir else None
  builder = tfds.builder(f"synthetic_faces/{data_config.config}", data_dir=data_dir)
  builder.download_and_prepare()   # renders offline on first use; no download
  return builder

"""Evaluates one trained run: FD/KD, MSE, DCI, MIG, SAP, FactorVAE score, relation recovery,
the attributes reconstructions keep, and for aligned models the traversal effect and
steerability.

    python -m experiments.evaluate --checkpoint runs/demo/gem
    python -m experiments.evaluate --checkpoint runs/demo/warmup \
        --alignment runs/demo/graph/alignment.json --out runs/demo/warmup_eval.json
    python -m experiments.evaluate --checkpoint runs/x --num_images 10000 \
        --fid_weights ~/models/pt_inception-2015-12-05-6726825d.pth

--fid_weights (pytorch-fid's FID Inception weights, sha256-checked; --fid_weights_sha256 pins
the full digest) gives FID/KID. Otherwise --inception_weights (a Keras InceptionV3 notop .h5)
gives "FD (Keras InceptionV3)", and without either FD/KD use the project's CNN trained on the
run's data set (trained once into --extractor_dir, then reused): neither is FID/KID, and the
output says which extractor was used. Prints the metrics as JSON and writes them to --out.

The level reader of steerability and kept attributes (--reader): 'local_cnn' (the extractor's
attribute heads, on a labelled data set), 'scores' (a CNN trained on the GEM run's scored images
and scores alone, gem_jax/metrics/score_reader.py, cached in --score_reader_dir, default
<run>/score_reader), or 'auto': the local CNN where it reads the run's attributes, else the
score reader where the run has scores. --split validation chooses settings (the last
config.data.validation_images training images, never scored); test reports.
"""
import json
import sys
from pathlib import Path

from absl import app, flags

from experiments import cli
from experiments.configs.table1 import get_config
from gem_jax.evaluation import evaluate_model, make_extractor
from gem_jax.metrics.score_reader import run_score_reader
from gem_jax.relations import Alignment
from gem_jax.train import CheckpointError
from gem_jax.trained_model import checkpoint_source, load

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A run's workdir or checkpoints/ folder.",
                                  required=True)
_OUT = flags.DEFINE_string("out", None, "JSON output (default: <checkpoint>/eval.json).")
_NUM = flags.DEFINE_integer("num_images", 2_000, "Evaluation images (and prior samples).")
_SPLIT = flags.DEFINE_string("split", None, "Split (default: the run's config.data.eval_split).")
_FID = flags.DEFINE_string("fid_weights", None,
                           "Local pt_inception-2015-12-05-6726825d.pth: FID (docs/metrics.md).")
_FID_SHA = flags.DEFINE_string("fid_weights_sha256", None,
                               "Full sha256 of --fid_weights to pin (default: its prefix).")
_INCEPTION = flags.DEFINE_string("inception_weights", None,
                                 "Local Keras InceptionV3 notop .h5: FD (Keras InceptionV3), "
                                 "not FID (docs/metrics.md).")
_EXTRACTOR_DIR = flags.DEFINE_string("extractor_dir", "runs/feature_extractors",
                                     "Cache of the project's local feature extractors.")
_EXTRACTOR_STEPS = flags.DEFINE_integer("extractor_steps", 600,
                                       "Training steps of the local CNN (when not cached).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the prior samples and metric subsampling.")
_READER = flags.DEFINE_enum("reader", "auto", ["auto", "local_cnn", "scores"],
                           "Level reader of steerability and kept attributes.")
_READER_DIR = flags.DEFINE_string("score_reader_dir", None,
                                  "Cache of the score reader (default: <run>/score_reader).")
_ALIGNMENT = flags.DEFINE_string(
    "alignment", None, "An alignment.json to give the model (e.g. a GEM run's graph/"
    "alignment.json, to measure its warm-up's traversals); default: the run's own.")


def _reader(model, extractor):
  """The level reader --reader asks for (None: the extractor's own heads)."""
  heads = set(getattr(extractor, "meta", {}).get("attribute_names", ()))
  names = set(model.alignment.attribute_names) if model.alignment is not None else set()
  if _READER.value == "local_cnn" or (_READER.value == "auto" and names and names <= heads):
    return None
  root = checkpoint_source(_CHECKPOINT.value).parent
  if not (root / "scores" / "scores.npy").is_file():
    if _READER.value == "scores":
      sys.exit(f"error: --reader scores needs a GEM run's scores; {root} holds no "
               "scores/scores.npy")
    return None
  return run_score_reader(model.config.data, root, _READER_DIR.value)


def main(argv):
  del argv
  cli.setup_logging()
  try:
    model = load(_CHECKPOINT.value)
  except CheckpointError as e:
    sys.exit(f"error: {e}")
  if _ALIGNMENT.value:
    alignment = Alignment.from_json(Path(_ALIGNMENT.value).read_text())
    if alignment.latent_dim != model.latent_dim:
      sys.exit(f"error: {_ALIGNMENT.value} aligns {alignment.latent_dim} latents but the model "
               f"has {model.latent_dim}")
    model.alignment = alignment
  eval_config = get_config("small").eval
  eval_config.num_images = eval_config.num_samples = _NUM.value
  eval_config.dci_max_train = min(10_000, int(0.8 * _NUM.value))
  eval_config.kid_subset_size = min(1_000, _NUM.value)
  eval_config.split = _SPLIT.value or model.config.data.eval_split
  eval_config.fid_weights = _FID.value
  eval_config.fid_weights_sha256 = _FID_SHA.value
  eval_config.inception_weights = _INCEPTION.value
  eval_config.extractor_steps = _EXTRACTOR_STEPS.value
  eval_config.extractor_examples = min(eval_config.extractor_examples, 20 * _NUM.value)
  extractor = make_extractor(model.config.data, eval_config, _EXTRACTOR_DIR.value)
  reader = _reader(model, extractor)
  metrics = evaluate_model(model, model.config, eval_config, extractor, seed=_SEED.value,
                           reader=reader)
  result = {"checkpoint": str(_CHECKPOINT.value), "step": model.step,
            "model": model.config.model.name, "settings": eval_config.to_dict(),
            "metrics": metrics}
  out = Path(_OUT.value or Path(_CHECKPOINT.value) / "eval.json")
  out.write_text(json.dumps(result, indent=2))
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)

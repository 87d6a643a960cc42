"""Evaluation of one trained model: reconstruction, FD/KD of reconstructions and samples,
disentanglement against the data set's ground-truth factors, relation recovery against its
true graph, and, where a level reader reads the attributes, the attributes the reconstructions
keep and, for aligned models, the traversal effect and steerability of each aligned latent.

    metrics = evaluate_model(model, model.config, eval_config, extractor)
    metrics = evaluate_model(model, model.config, eval_config, extractor, reader=reader)

The level reader is the extractor itself when it classifies the attributes (the local CNN on
a labelled data set), else `reader` (a GEM run's score reader, gem_jax/metrics/score_reader.py,
for data without labels); its name goes into the result ('level_reader').

eval_config: split, num_images, num_samples, dci_max_train, kid_subset_size, kid_subsets
(see experiments/configs/table1.py). extractor: a `gem_jax.metrics.features` extractor; its
`name` goes into the result so that a local-CNN or Keras-Inception distance is never read as
FID (`features.metric_label`).
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
from tqdm import tqdm

from gem_jax.data import DatasetSpec, get_dataset, load_examples
from gem_jax.metrics import disentanglement as dm
from gem_jax.metrics import features
from gem_jax.metrics.fid import frechet_distance, kernel_inception_distance
from gem_jax.metrics.intervention import (
  intervention_error,
  measured_intervention_effects,
  true_intervention_effects,
)
from gem_jax.metrics.kept_attributes import kept_attributes
from gem_jax.metrics.steerability import Steerability, steerability
from gem_jax.metrics.traversal import expected_levels
from gem_jax.plots import to_uint8
from gem_jax.relations.alignment import spearman_matrix
from gem_jax.relations.recovery import graph_metrics, relation_recovery


def batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int = 250,
            desc: str | None = None) -> np.ndarray:
  """fn over x [N, ...] in chunks of `batch` rows, concatenated."""
  chunks = range(0, len(x), batch)
  if desc:
    chunks = tqdm(chunks, desc=desc, unit="batch", leave=False)
  return np.concatenate([np.asarray(fn(x[i:i + batch])) for i in chunks])


def sample_images(model, num: int, seed: int, batch: int = 250) -> np.ndarray:
  """Prior samples decoded by the model, float32 [num, H, W, 3] in [0, 1]."""
  return np.concatenate([model.sample(min(batch, num - i), seed=seed * 100_003 + i)
                         for i in range(0, num, batch)])


def image_metrics(model, images: np.ndarray, recon: np.ndarray, eval_config, extractor,
                  seed: int) -> dict:
  """MSE of the reconstructions recon float32 [N, H, W, 3] in [0, 1] (decodings of the
  posterior means) of images uint8 [N, H, W, 3], and FD/KD (under `extractor`) of
  reconstructions and prior samples."""
  x = images.astype(np.float32) / 255.0
  samples = sample_images(model, eval_config.num_samples, seed)
  real_f = extractor(images)
  out = {"mse_per_pixel": float(np.mean(np.square(recon - x))),
         "mse_per_image": float(np.mean(np.sum(np.square(recon - x), axis=(1, 2, 3)))),
         "feature_extractor": extractor.name}
  for kind, fake in (("recon", recon), ("sample", samples)):
    fake_f = extractor(to_uint8(fake))
    out[f"fd_{kind}"] = frechet_distance(real_f, fake_f)
    kid = kernel_inception_distance(real_f, fake_f, num_subsets=eval_config.kid_subsets,
                                    subset_size=eval_config.kid_subset_size, seed=seed)
    out[f"kd_{kind}"], out[f"kd_{kind}_std"] = kid["mean"], kid["std"]
  return out


def disentanglement_metrics(codes: np.ndarray, factors: np.ndarray, names: list[str],
                            eval_config, seed: int) -> dict:
  """DCI, MIG, SAP and the FactorVAE score of codes [N, d] against factors int [N, k]."""
  dci = dm.dci(codes, factors, seed=seed, max_train=eval_config.dci_max_train)
  fvae = dm.factor_vae_score(codes, factors, seed=seed,
                             num_variance_estimate=min(10_000, len(codes)))
  return {"factors": names,
          "dci_disentanglement": dci["disentanglement"],
          "dci_completeness": dci["completeness"],
          "dci_informativeness": dci["informativeness_test"],
          "mig": dm.mig(codes, factors),
          "sap": dm.sap(codes, factors, seed=seed),
          "factor_vae_score": fvae["eval_accuracy"],
          "factor_vae_active_dims": fvae["num_active_dims"]}


def learned_relations(model) -> tuple[np.ndarray, list[int]] | None:
  """(learned graph over the model's aligned latents, their latent indices) for models that
  learn relations: GEM's DisGraph A, or DEAR's SCM weights; None otherwise."""
  scm = getattr(model, "scm_weights", None)
  if scm is not None:
    return np.asarray(scm), list(range(np.asarray(scm).shape[0]))
  if model.alignment is not None:
    return np.asarray(model.adjacency), list(model.alignment.latent_of_attribute)
  return None


def aligned_graphs(model, spec: DatasetSpec) -> dict | None:
  """The learned graph, A_0 and the true graph over the model's aligned attributes, in latent
  order with the alignment's signs: {'names', 'learned' [k, k], 'a0' [k, k] or None, 'truth'
  [k, k], 'independent_pairs'}; None for data without a true graph or models without one."""
  if spec.true_graph is None:
    return None
  attributes = list(spec.attribute_names)
  found = learned_relations(model)
  if found is None:
    return None
  learned, latents = found
  if model.alignment is not None and getattr(model, "scm_weights", None) is None:
    names = list(model.alignment.attribute_names)
    signs = np.asarray(model.alignment.signs, np.float64)
    sub = learned[np.ix_(latents, latents)] * np.outer(signs, signs)
    a0 = np.asarray(model.graph_state["a0"])[np.ix_(latents, latents)] * np.outer(signs, signs)
  else:
    num = len(attributes)
    names, sub, a0 = attributes[:len(latents)], learned[:num, :num], None
  idx = [attributes.index(n) for n in names]
  truth = np.asarray(spec.true_graph, np.float64)[np.ix_(idx, idx)]
  pairs = [(names.index(a), names.index(b)) for a, b in spec.independent_pairs
           if a in names and b in names]
  return {"names": names, "learned": sub, "a0": a0, "truth": truth, "independent_pairs": pairs}


def relation_metrics(model, spec: DatasetSpec) -> dict:
  """Relation recovery of the learned graph against the data set's true graph (synthetic_faces'
  TRUE_GRAPH), in the model's latent order and signs, and of A_0 ('relation_a0_*'); {} for
  data without a true graph or models without one."""
  g = aligned_graphs(model, spec)
  if g is None:
    return {}
  pairs = g["independent_pairs"]
  out = {f"relation_{k}": v for k, v in
         relation_recovery(g["learned"], g["truth"], independent_pairs=pairs).items()}
  out.update({f"graph_{k}": v for k, v in graph_metrics(g["learned"], g["truth"]).items()})
  if g["a0"] is not None:
    out.update({f"relation_a0_{k}": v for k, v in
                relation_recovery(g["a0"], g["truth"], independent_pairs=pairs).items()})
    out.update({f"graph_a0_{k}": v for k, v in graph_metrics(g["a0"], g["truth"]).items()})
  return out


def alignment_truth_metrics(model, codes: np.ndarray, examples: dict, spec: DatasetSpec) -> dict:
  """How well each aligned latent carries its attribute's TRUE level, on the evaluated images:
  'alignment_truth_spearman' [n] (Spearman of the latent's mean with the level, signed by the
  alignment), its minimum, and 'alignment_truth_best' [n] (the largest |Spearman| of any latent
  with the level); {} for models without an alignment or data without known true levels.
  codes: the images' posterior means [N, d]."""
  if model.alignment is None:
    return {}
  al = model.alignment
  levels = spec.true_levels(examples, list(al.attribute_names))
  if levels is None:
    return {}
  rho = spearman_matrix(codes, levels)
  own = [float(s * rho[k, a]) for a, (k, s) in enumerate(zip(al.latent_of_attribute, al.signs,
                                                              strict=True))]
  return {"alignment_truth_attributes": list(al.attribute_names),
          "alignment_truth_spearman": own, "alignment_truth_spearman_min": min(own),
          "alignment_truth_best": np.abs(rho).max(axis=0).tolist()}


TRAVERSAL_IMAGES = 256  # images whose codes are traversed for traversal_metrics
TRAVERSAL_DELTA = 2.0   # each aligned latent goes from -delta to +delta


def reader_steerability(model, images: np.ndarray, reader) -> Steerability | None:
  """The steerability (and traversal effect) of the model's aligned latents on images uint8
  [N, H, W, 3], -TRAVERSAL_DELTA -> +TRAVERSAL_DELTA, read by a level reader's attribute heads
  (the local CNN, or a run's score reader); None unless the model has an alignment and the
  reader a head for each aligned attribute (its meta['attribute_names']; CelebA's local CNN
  has unnamed columns)."""
  columns = _level_heads(model, reader)
  if columns is None:
    return None
  return steerability(model, images, lambda x: reader.outputs(x, "logits")[:, columns],
                      delta=TRAVERSAL_DELTA)


def traversal_metrics(model, images: np.ndarray, reader) -> dict:
  """Traversal effect (gem_jax.metrics.traversal) and steerability (gem_jax.metrics.
  steerability) of each aligned latent, in levels (synthetic_faces: 0..5) as `reader`'s
  attribute heads read them, from one set of traversals (`reader_steerability`); {} when the
  reader cannot read the aligned attributes.

  images: uint8 [N, H, W, 3]; the first TRAVERSAL_IMAGES are traversed.
  """
  steer = reader_steerability(model, images[:TRAVERSAL_IMAGES], reader)
  if steer is None:
    return {}
  own = np.diag(steer.effect)
  return {"traversal_attributes": list(steer.attributes),
          "traversal_effect": steer.effect.tolist(), "traversal_effect_own": own.tolist(),
          "traversal_effect_own_min": float(own.min()), **steer.metrics(),
          "level_reader": reader.name}


def kept_attribute_metrics(model, images: np.ndarray, recon: np.ndarray, examples: dict,
                           spec: DatasetSpec, reader) -> dict:
  """Per attribute, the share of images whose reconstruction the level reader reads within one
  level of what it reads on the image ('recon_keeps_input') and, where the data set knows the
  true levels, of the true level ('recon_keeps_truth'; 'input_reads_truth': the reader on the
  images themselves, its ceiling); gem_jax/metrics/kept_attributes.py. The attributes: the
  model's aligned ones, or for a model without alignment those of the data set the reader has
  heads for; {} when it has none.

  images: uint8 [N, H, W, 3]; recon: their reconstructions float32 [N, H, W, 3] in [0, 1].
  """
  heads = list(getattr(reader, "meta", {}).get("attribute_names", ()))
  if not hasattr(reader, "outputs") or not heads:
    return {}
  names = (list(model.alignment.attribute_names) if model.alignment is not None
           else [n for n in spec.attribute_names if n in heads])
  if not names or any(n not in heads for n in names):
    return {}
  columns = [heads.index(n) for n in names]
  read = lambda x: expected_levels(reader.outputs(to_uint8(x), "logits")[:, columns])
  shares = kept_attributes(read(images), read(recon), spec.true_levels(examples, names))
  out = {"recon_keeps_attributes": names, "recon_keeps_reader": reader.name,
         "recon_keeps_input": shares["keeps_input"].tolist(),
         "recon_keeps_input_min": float(shares["keeps_input"].min())}
  if "keeps_truth" in shares:
    out.update(recon_keeps_truth=shares["keeps_truth"].tolist(),
               input_reads_truth=shares["input_truth"].tolist())
  return out


def _level_heads(model, extractor) -> list[int] | None:
  """Columns of the extractor's attribute heads for the model's aligned attributes, or None
  when the model has no alignment or the extractor lacks a head (CelebA's are unnamed)."""
  if model.alignment is None or not hasattr(extractor, "outputs"):
    return None
  heads = list(getattr(extractor, "meta", {}).get("attribute_names", ()))
  names = list(model.alignment.attribute_names)
  if any(n not in heads for n in names):
    return None
  return [heads.index(n) for n in names]


def intervention_metrics(model, examples: dict, spec: DatasetSpec, extractor,
                         seed: int = 0) -> dict:
  """do(attribute + 2 levels) on the first TRAVERSAL_IMAGES images, measured by the local CNN
  against the data set's counterfactual (`gem_jax.metrics.intervention`): 'intervention_
  effects' and 'intervention_true_effects' [n, n] (row: the intervened attribute),
  'intervention_error' (off the diagonal) and 'intervention_own_error', levels; {} for models
  that cannot intervene in levels (unguided), data without a known SCM, or an extractor
  without the attributes' heads."""
  columns = _level_heads(model, extractor)
  if columns is None:
    return {}
  try:
    model.level_scale()
  except ValueError:
    return {}
  names = list(model.alignment.attribute_names)
  subset = {k: v[:TRAVERSAL_IMAGES] for k, v in examples.items()}
  true = true_intervention_effects(spec, subset, names, seed=seed)
  if true is None:
    return {}
  measured = measured_intervention_effects(
      model, subset["image"], lambda x: extractor.outputs(x, "logits")[:, columns], names)
  errors = intervention_error(measured, true)
  return {"intervention_attributes": names, "intervention_effects": measured.tolist(),
          "intervention_true_effects": true.tolist(),
          "intervention_error": errors["intervention_error"],
          "intervention_own_error": errors["own_error"]}


def evaluate_model(model, config, eval_config, extractor, seed: int = 0, reader=None) -> dict:
  """All metrics of one model on `eval_config.num_images` images of `eval_config.split`
  (e.g. 'test', or 'validation' to choose settings: `gem_jax.data.load_examples`). reader: the
  level reader of steerability and kept attributes; default the extractor (the local CNN reads
  a labelled data set's attributes), e.g. a GEM run's score reader where there are no labels."""
  examples = load_examples(config.data, eval_config.split, eval_config.num_images)
  images = examples["image"]
  logging.info("evaluating %s on %d %s images", config.model.name, len(images),
               eval_config.split)
  codes = batched(lambda x: model.encode(x)[0], images, desc="encode")
  recon = batched(model.decode, codes, desc="decode")
  out = image_metrics(model, images, recon, eval_config, extractor, seed)
  out["split"] = eval_config.split
  reader = extractor if reader is None else reader
  spec = get_dataset(config.data)
  out.update(kept_attribute_metrics(model, images, recon, examples, spec, reader))
  factors, names = spec.ground_truth_factors(examples)
  if factors is not None:
    out.update(disentanglement_metrics(codes, factors, names, eval_config, seed))
  out.update(relation_metrics(model, spec))
  out.update(alignment_truth_metrics(model, codes, examples, spec))
  out.update(traversal_metrics(model, images, reader))
  out.update(intervention_metrics(model, examples, spec, extractor, seed))
  return out


def make_extractor(data_config, eval_config, cache_root: str):
  """The standard FID network from eval_config.fid_weights when set (its sha256 pinned by
  eval_config.fid_weights_sha256 when that is set), else Keras InceptionV3 from
  eval_config.inception_weights, else the project's local CNN for this data set (trained once
  into cache_root and reused)."""
  if eval_config.get("fid_weights"):
    return features.FIDInceptionFeatures.from_file(
        eval_config.fid_weights, expected_sha256=eval_config.get("fid_weights_sha256"))
  if eval_config.get("inception_weights"):
    return features.InceptionV3Features.from_file(eval_config.inception_weights)
  return features.local_extractor(data_config, cache_root,
                                  steps=eval_config.extractor_steps,
                                  num_examples=eval_config.extractor_examples)

"""`run_scoring`: a whole `python -m experiments.score_attributes` run (stages 4-5).

It loads the first N images of a split, scores them through the answer cache (a rerun resumes
with zero repeated requests; `score_images`, the same stage as the GEM pipeline's), computes
the asymmetric Somers' D matrix (`S[i, j] = D(A_j | A_i)`, the impact of attribute i on
attribute j; docs/design.md stage 5) and, when the data set has labels, how good the scorer is and
how well S recovers the truth. Keys are read by the scorers from the environment only and
never appear here.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Optional

import numpy as np

from gem_jax.data import get_dataset, load_examples
from gem_jax.scorers import image_hashes
from gem_jax.scoring.attributes import label_levels
from gem_jax.scoring.dry_run import print_dry_run
from gem_jax.scoring.figures import save_figures
from gem_jax.scoring.options import (
    ScoringOptions,
    cache_path_for,
    check_labels,
    check_options,
    data_config,
)
from gem_jax.scoring.report import DEFINITION, format_matrix, relation_report, scores_somers_d
from gem_jax.scoring.score import ScoredImages, score_images, write_json
from gem_jax.scoring.truth import relation_truth

__all__ = ["run_scoring"]

logger = logging.getLogger("gem_jax.scoring")


def _load(o: ScoringOptions):
  """(images uint8 [N, H, W, 3], labels [N, k] or None, their names or None) of the split."""
  examples = load_examples(data_config(o), o.split, o.num_images)
  images = np.asarray(examples["image"])
  if len(images) < o.num_images:
    logger.warning("%s/%s split %r has only %d images; scoring those (asked for %d)",
                   o.dataset, o.data_config, o.split, len(images), o.num_images)
  labels, label_names = get_dataset(o.dataset).oracle_labels(examples)
  return images, labels, label_names


def _write_somers_d(out: str, scored: ScoredImages, report: dict) -> None:
  """somers_d.npy (float32 [n, n]) and somers_d.json (S, its definition, bootstrap CIs)."""
  meta = scored.meta
  np.save(os.path.join(out, "somers_d.npy"), scores_somers_d(scored.scores).astype(np.float32))
  somers_json = {
      "attributes": meta["attributes"],
      "definition": DEFINITION,
      "somers_d": report["somers_d"],
      "num_images": report["num_images"],
      "missing_per_attribute": report["missing_per_attribute"],
      "backend": meta["backend"],
      "model": meta["model"],
      "is_simulation": meta["is_simulation"],
  }
  if "bootstrap" in report:
    somers_json["bootstrap"] = report["bootstrap"]
  write_json(os.path.join(out, "somers_d.json"), somers_json)


def _write_accuracy(out: str, scored: ScoredImages, report: dict) -> Optional[dict]:
  """scorer_accuracy.json when the report has labels or a truth; its content (else None)."""
  if "labels" not in report and "truth" not in report:
    return None
  meta = scored.meta
  acc = {key: meta[key] for key in ("attributes", "backend", "model", "is_simulation", "scorer")}
  acc["num_images"] = report["num_images"]
  if "labels" in report:
    acc.update(report["labels"]["scorer_accuracy"])
    acc["somers_d"] = report["somers_d"]
    acc["somers_d_labels"] = report["labels"]["somers_d_labels"]
    acc["scores_vs_labels"] = report["labels"]["scores_vs_labels"]
    if "ci_covers_labels_S" in report["labels"]:
      acc["ci_covers_labels_S"] = report["labels"]["ci_covers_labels_S"]
  if "truth" in report:
    acc["truth"] = report["truth"]
  write_json(os.path.join(out, "scorer_accuracy.json"), acc)
  return acc


def run_scoring(options: ScoringOptions, *, print_fn: Callable[[str], None] = print) -> dict:
  """Score the first `num_images` images of a split and write the relation report.

  Writes to `options.out`: scores.npy (int32 [N, n]) and scores.json (`score_images`; the
  schema is in docs/scorers.md), somers_d.npy / somers_d.json (S [n, n], its definition,
  bootstrap CIs if asked) and somers_d.png (the heatmap); with labels also
  scorer_accuracy.json (per-attribute accuracy, all-zero rate, S from the labels, and for a
  data set with a true graph the graph / population comparison) and somers_d_vs_truth.png.
  The answer cache is `<out>/score_cache.jsonl` unless `cache_path` is set (not used for
  replay).

  dry_run: print the request count and the estimated token cost; nothing is sent or written.
  Returns a summary dict (the report for a real run, the estimate for a dry run).
  """
  o = options
  attributes = check_options(o)
  images, labels, label_names = _load(o)
  check_labels(o, attributes, labels, label_names)
  if o.dry_run:
    return print_dry_run(o, attributes, images, image_hashes(images), cache_path_for(o),
                         print_fn)

  scored = score_images(o, images, labels, label_names)
  truth = relation_truth(get_dataset(o.dataset))
  report = relation_report(scored.scores, attributes,
                           labels=label_levels(labels, label_names, attributes),
                           bootstrap=o.bootstrap, seed=o.seed, truth=truth)
  _write_somers_d(o.out, scored, report)
  accuracy_json = _write_accuracy(o.out, scored, report)
  s = np.asarray(report["somers_d"], np.float64)  # rounded to 4 digits, as printed
  desc = scored.meta["scorer"]
  figures = save_figures(o.out, s, attributes, desc, report) if o.plots else []
  _print_summary(print_fn, o.out, scored.meta, report)
  return {
      "out": o.out,
      "scores": scored.scores,
      "somers_d": s,
      "report": report,
      "scores_meta": scored.meta,
      "scorer_accuracy": accuracy_json,
      "figures": figures,
  }


def _print_summary(print_fn, out: str, meta: dict, report: dict) -> None:
  names = report["attributes"]
  sim = (
      "  [SIMULATED: oracle, not an MLLM]"
      if meta["backend"] == "oracle"
      else ("  [SIMULATED]" if meta["is_simulation"] else "")
  )
  print_fn(f"scored {report['num_images']} images with {meta['backend']}:{meta['model']}{sim}")
  if meta.get("cache"):
    c = meta["cache"]
    print_fn(f"  cache {c['path']}: {c['hits']} hits, {c['newly_scored']} newly scored")
  print_fn("Somers' D, S[i, j] = impact of row i on column j:")
  print_fn(format_matrix(report["somers_d"], names))
  if "labels" in report:
    _print_labels(print_fn, report["labels"])
  if "truth" in report:
    g = report["truth"]["from_scores"]
    print_fn(
        f"TRUE_GRAPH: sign agreement {g['sign_agreement']} on {g['num_true_edges']} edges; "
        f"AUROC edges vs independent pairs: undirected {g['auroc_undirected']}, directed "
        f"{g['auroc_directed']}"
    )
    if "population" in report["truth"]:
      print_fn(f"  S vs population S: {report['truth']['population']['scores_vs_population']}")
  print_fn(f"wrote {out}")


def _print_labels(print_fn, labels: dict[str, Any]) -> None:
  acc = labels["scorer_accuracy"]
  print_fn("scorer vs labels (exact / within +-1):")
  for a, v in acc["per_attribute"].items():
    print_fn(f"  {a:>10}: {v['exact']:.3f} / {v['within_1']:.3f}")
  print_fn(
      f"  mean exact {acc['mean_exact']}, all-zero rate {acc['all_zero_rate']} "
      f"(labels: {acc['all_zero_rate_labels']})"
  )
  print_fn(f"  S vs S(labels): {labels['scores_vs_labels']}")

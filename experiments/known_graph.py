"""GEM against a data set's known graph: A_0, GEM's learned A and causal discovery on the
scores alone, on a labelled folder (docs/data.md) or a data set the project renders.

    python -m experiments.render_pendulum --out data/pendulum
    python -m experiments.known_graph --data_dir data/pendulum --workdir runs/known_graph
    python -m experiments.known_graph --config experiments/configs/known_graph.py:quick \\
        --config.dataset=pendulum --workdir runs/kg_quick

Writes <workdir>/report.json and <workdir>/graphs.png (gem_jax.graph_benchmark); the run's
stages (warmup/, scores/, graph/, gem/) resume as GEM's pipeline does.
"""
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from experiments import cli
from experiments.configs import labelled_gem, synthetic_gem
from gem_jax.config_checks import validate_config
from gem_jax.data import get_dataset
from gem_jax.graph_benchmark import run_known_graph
from gem_jax.preflight import preflight
from gem_jax.train import run_lock


def run_config(kg):
  """The GEM run config of a known_graph config: its data set, size tokens, variant, seed,
  schedule and oracle (a SIMULATION: every attribute is one of the data set's concepts)."""
  tokens = ",".join([kg.run_tokens] + kg.variant.split("-"))
  if kg.dataset == "synthetic_faces":
    c = synthetic_gem.get_config(tokens)
  else:
    c = labelled_gem.get_config(tokens + ",oracle")
    c.data.name = kg.dataset
    c.data.image_dir = kg.image_dir
    c.gem.attributes = ",".join(get_dataset(c.data).attribute_names)
  c.data.data_dir = kg.data_dir
  c.seed = kg.seed
  c.gem.warmup_steps = kg.warmup_steps
  c.train.num_steps = c.train.checkpoint_every = c.train.sample_every = kg.stage4_steps
  c.gem.num_scored_images = kg.num_scored_images
  c.gem.scorer.backend = "oracle"
  c.gem.scorer.accuracy = kg.scorer_accuracy
  c.gem.scorer.error_model = kg.error_model
  c.gem.accept_weak_alignment = True  # measured and reported (truth Spearman), never refused
  return c


def table(report: dict) -> str:
  """The report as text: truth Spearman per concept, then SHD and intervention error per
  method."""
  lines = ["concept            truth Spearman"]
  lines += [f"{name:18s} {row['truth_spearman']}" for name, row in report["concepts"].items()]
  lines.append("graph            SHD  orientation  F1    AUROC  intervention error")
  for name, row in report["graphs"].items():
    error = report["interventions"].get(name, {}).get("error")
    lines.append(f"{name:16s} {row['shd']:>3}  {row['orientation']!s:11s}  {row['f1']!s:5s} "
                 f"{row['auroc']!s:6s} {error}")
  return "\n".join(lines)


def run(kg, workdir: Path) -> dict:
  """GEM's run of the known_graph config `kg` into workdir, checked first; the report."""
  config = run_config(kg)
  validate_config(config)
  for line in preflight(config, str(workdir)):
    print(f"preflight: {line}")
  with run_lock(workdir):
    return run_known_graph(config, workdir, kg.eval, workdir / "feature_extractor_cache")


def define_main():
  """Defines the flags (at run time, not import time: known_graph_study imports this module)
  and returns the absl main."""
  config = config_flags.DEFINE_config_file("config", cli.config_path("known_graph"),
                                           "Config file, optionally with ':preset'.")
  data_dir = flags.DEFINE_string("data_dir", None, "A labelled folder (images + labels.csv "
                                 "+ graph.json).")
  workdir = flags.DEFINE_string("workdir", "runs/known_graph", "Run folder.")

  def main(argv):
    del argv
    cli.setup_logging()
    kg = config.value
    if data_dir.value:
      kg.dataset, kg.image_dir = "labelled_folder", data_dir.value
    if kg.dataset == "labelled_folder" and not kg.image_dir:
      raise app.UsageError("--data_dir (a labelled folder) is required, or set "
                           "--config.dataset=pendulum or synthetic_faces")
    try:
      report = run(kg, Path(workdir.value))
    except cli.DOMAIN_ERRORS as e:
      sys.exit(f"error: {e}")
    print(table(report))
    print(f"wrote {Path(workdir.value) / 'report.json'} and {Path(workdir.value) / 'graphs.png'}")

  return main


if __name__ == "__main__":
  app.run(define_main())

"""Config for `python -m experiments.known_graph_study`: does GEM's learned graph beat its MLLM
prior and causal discovery on the scores, on data sets with a known graph?

    python -m experiments.known_graph_study --workdir runs/known_graph_study   # hours on 2 CPUs

For every data set x scorer x seed: one warm-up, one oracle scoring (a SIMULATION) and one
alignment, shared by every GEM variant (a variant with a discovery prior rebuilds A_0 from the
same scores); the score-only methods read the same scores. Rows: A_0 (Somers' D), PC, GES,
DirectLiNGAM, each GEM variant; columns: SHD, orientation, F1, AUROC (docs/metrics.md, "Graph
metrics of the field"), intervention error (do(a + 2 levels), local CNN; a score-only graph
intervenes through the first variant's decoder), min truth Spearman.

Presets: 'small' (default; the CPU study), 'tiny' (seconds; tests).
"""
import ml_collections
from ml_collections.config_dict import placeholder

from experiments.configs import known_graph

PRESETS = ("small", "tiny")


def get_config(arg: str = "small") -> ml_collections.ConfigDict:
  preset = arg or "small"
  if preset not in PRESETS:
    raise ValueError(f"unknown known_graph_study preset {preset!r}; choose from {PRESETS}")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.datasets = "synthetic_faces,pendulum"
  c.data_dir = placeholder(str)    # tfds data_dir (the pendulum renders into it)
  c.scorers = "uniform,realistic"  # oracle error models at scorer_accuracy (docs/scorers.md)
  c.scorer_accuracy = 0.884
  c.seeds = "0,1,2"
  # GEM variants (synthetic_gem.py tokens joined by '-') on every data set and scorer; the
  # first also decodes the score-only graphs' interventions.
  c.variants = "gem_paper,gem_scm,gem_sparse,gem_sparse-pc_prior,gem_sparse-ges_prior"
  # gem_sparse's ablations, on ablation_scorers only (CPU time).
  c.ablations = "gem_sparse-pc_prior-linear_graph,gem_sparse-no_sparsity,gem_sparse-acyclic"
  c.ablation_scorers = "realistic"
  c.run_tokens = "demo"
  c.warmup_steps = 2_000
  c.stage4_steps = 400
  c.num_scored_images = 1_500
  c.results = "docs/results/known_graph_study.json"  # relative to the current directory

  c.eval = known_graph.eval_config()

  if preset == "tiny":
    c.datasets = "pendulum"
    c.scorers = "realistic"
    c.seeds = "0,1"
    c.variants = "gem_paper,gem_sparse"
    c.ablations = "gem_sparse-no_sparsity"
    c.run_tokens = "tiny"
    c.warmup_steps = 4
    c.stage4_steps = 2
    c.num_scored_images = 120
    c.results = placeholder(str)   # tests pass a path
    c.eval.intervention_images = 16
    c.eval.extractor_steps = 5
    c.eval.extractor_examples = 64
  return c

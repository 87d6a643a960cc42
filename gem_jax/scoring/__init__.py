"""Scoring a data set's images with a scorer, and what the scores say (stages 4-5).

    scored = score_images(ScoringOptions("oracle", "runs/x"), images, labels, label_names)
    report = relation_report(scored.scores, ["bangs", "bald"], labels=levels, bootstrap=200,
                             truth=relation_truth(get_dataset("synthetic_faces")))
    run_scoring(ScoringOptions(...))   # all of python -m experiments.score_attributes

    attributes.py  the attribute list, its check against the labels, ScoringError
    options.py     ScoringOptions, the checks before anything is loaded, the scorer they name
    score.py       score_images: scores.npy + scores.json (the one schema, docs/scorers.md)
    truth.py       RelationTruth of a data set with a true graph (relation_truth)
    report.py      Somers' D, scorer accuracy, the truth comparison (relation_report)
    figures.py     the heatmaps; dry_run.py: request count and cost; run.py: run_scoring

The scorers are built by `gem_jax.scorers.make_scorer`; the math is `gem_jax.relations`.
"""
from gem_jax.relations import RelationTruth, auroc, graph_recovery
from gem_jax.scoring.attributes import (
    DEFAULT_ATTRIBUTES,
    NUM_LEVELS,
    ScoringError,
    label_levels,
    parse_attribute_list,
    validate_attributes,
)
from gem_jax.scoring.dry_run import estimate_request_cost
from gem_jax.scoring.options import ScoringOptions, check_options
from gem_jax.scoring.report import DEFINITION, format_matrix, relation_report, scorer_accuracy
from gem_jax.scoring.run import run_scoring
from gem_jax.scoring.score import ScoredImages, score_dataset, score_images
from gem_jax.scoring.truth import relation_truth

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "DEFINITION",
    "NUM_LEVELS",
    "RelationTruth",
    "ScoredImages",
    "ScoringError",
    "ScoringOptions",
    "auroc",
    "check_options",
    "estimate_request_cost",
    "format_matrix",
    "graph_recovery",
    "label_levels",
    "parse_attribute_list",
    "relation_report",
    "relation_truth",
    "run_scoring",
    "score_dataset",
    "score_images",
    "scorer_accuracy",
    "validate_attributes",
]

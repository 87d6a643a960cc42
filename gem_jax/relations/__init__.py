"""Relations between attributes: pure math on numpy/scipy/jax arrays, no other gem_jax package.

* `somers_d`: the asymmetric Somers' D matrix S [n, n] of integer scores [N, n] (Eq. 7-8),
  from contingency tables, with bootstrap confidence intervals (`somers_d_bootstrap`);
* `alignment`: which latent carries which attribute (`align_latents`, or `fixed_alignment` for
  MLLM-guided training) and the initial DisGraph A_0 [d, d] from S (`initial_graph`);
* `alignment_quality`: how well each attribute is carried (`alignment_quality`), the guard's
  `WeakAlignmentError` and plot labels that say so;
* `recovery`: how well a learned or measured signed matrix recovers a true DAG
  (`relation_recovery`, `graph_recovery`, `auroc`; `graph_metrics`, the field's SHD,
  orientation, F1 and AUROC of a graph read at `EDGE_THRESHOLD`);
* `discovery` (imported on its own, as it loads causal-learn: `from gem_jax.relations.discovery
  import discover, prior_matrix`): PC, GES and DirectLiNGAM on the scores alone, and the prior
  graph GEM starts from (`config.gem.prior`).

`from gem_jax.relations import somers_d` is the function (its module, gem_jax/relations/somers_d.py,
is `sys.modules["gem_jax.relations.somers_d"]`).
"""
from gem_jax.relations.alignment import (
    Alignment,
    align_latents,
    fixed_alignment,
    initial_graph,
    spearman_matrix,
)
from gem_jax.relations.alignment_quality import (
    AlignmentQuality,
    WeakAlignmentError,
    alignment_quality,
    is_carried,
    labels_with_quality,
    quality_from_alignment,
    quality_from_json,
    traversal_labels,
)
from gem_jax.relations.recovery import (
    EDGE_THRESHOLD,
    RelationTruth,
    auroc,
    graph_metrics,
    graph_recovery,
    relation_recovery,
)
from gem_jax.relations.somers_d import (
    contingency_tables,
    somers_d,
    somers_d_bootstrap,
    somers_d_from_tables,
)

__all__ = [
    "EDGE_THRESHOLD",
    "Alignment",
    "AlignmentQuality",
    "WeakAlignmentError",
    "alignment_quality",
    "fixed_alignment",
    "is_carried",
    "labels_with_quality",
    "quality_from_alignment",
    "quality_from_json",
    "RelationTruth",
    "align_latents",
    "auroc",
    "contingency_tables",
    "graph_metrics",
    "graph_recovery",
    "initial_graph",
    "relation_recovery",
    "somers_d",
    "somers_d_bootstrap",
    "somers_d_from_tables",
    "spearman_matrix",
    "traversal_labels",
]

"""Evaluation metrics: disentanglement (DCI, MIG, SAP, FactorVAE score), FD/KD under a pluggable
feature extractor, and the traversal effect (see docs/metrics.md). Relation recovery lives in
`gem_jax.relations.recovery`."""
from gem_jax.metrics.disentanglement import dci, factor_vae_score, mig, sap
from gem_jax.metrics.fid import frechet_distance, kernel_inception_distance

__all__ = ["dci", "factor_vae_score", "frechet_distance", "kernel_inception_distance", "mig",
           "sap"]

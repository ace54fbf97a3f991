"""Explanation quality: pullbacks against Captum's explainers with the standard metrics.

``explainers`` (registry, one signature ``(model, x, target) -> attribution``), ``metrics``
(batched torch metrics, checked against Quantus), ``focus`` (2×2 mosaics), ``stats`` (seeded paired
bootstrap), ``runner`` (seeded, resumable, shardable evaluation), ``report`` (merge, tables,
figure, HTML), ``cli`` (``whiteboxdl quality evaluate|merge``) and the optional
``quantus_bridge`` (GPL Quantus, never imported by the modules above).
"""

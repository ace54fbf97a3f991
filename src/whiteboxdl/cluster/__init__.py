"""Quality and robustness runs on a Ray cluster: every batch a Ray task, the same run directories.

The run directory format, resume, healing and ``merge`` are the runners' own
(:mod:`whiteboxdl.quality.runner`, :mod:`whiteboxdl.robustness.evaluate`); this package only
changes *where* the batches are computed:

* each unfinished batch becomes one Ray task with declared resources (CPUs, and one GPU per task
  for work that runs on CUDA when the cluster has GPUs), retried by Ray when its worker dies;
* workers rebuild the model (and, for quality runs, the images) from the run's config with the
  runners' own loaders, and check a digest of what they loaded against the driver's, so a node
  with another model file or data set fails loudly instead of mixing numbers;
* the driver writes every file (atomically, as the local run does), so the run directory needs
  no shared file system and an interrupted driver loses only batches in flight;
* every batch is seeded on its own, so the numbers equal the local single-process run's.

Modules: :mod:`~whiteboxdl.cluster.session` (options, addresses, connecting),
:mod:`~whiteboxdl.cluster.tasks` (tasks as they finish, worker set-up),
:mod:`~whiteboxdl.cluster.quality`, :mod:`~whiteboxdl.cluster.robustness`,
:mod:`~whiteboxdl.cluster.sweep` (a grid of quality runs fanned out at once) and
:mod:`~whiteboxdl.cluster.cli` (the ``--ray`` flags). Ray is the optional extra ``[ray]``; nothing
here imports it before it is used.

Example
-------
>>> from whiteboxdl.cluster.session import RayOptions
>>> RayOptions(address="auto", cpus_per_task=2).address
'auto'
"""

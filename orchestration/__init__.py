"""Airflow DAGs that schedule replay runs of the platform's own code (``python -m batch_replay``)
and nothing else: ``daily_reconcile``, ``backfill`` and ``kappa_rebuild``. The folder is the DAGs
folder (locally: ``python -m stack up airflow``); it imports Airflow and the standard library only."""

"""Airflow DAGs that schedule replay runs of the platform's own code (``kappa backfill``, ``kappa rebuild``)
and nothing else: ``daily_reconcile``, ``backfill`` and ``kappa_rebuild``. The folder is the DAGs
folder (locally: ``python -m stack up airflow``); it imports Airflow and the standard library only."""

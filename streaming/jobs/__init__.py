"""A pipeline's live job: its file (:mod:`.pipeline`), its runner and process (``kappa run``)."""

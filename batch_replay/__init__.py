"""Batch replay: a pipeline's live code run as a bounded batch over an older stretch of its topic."""

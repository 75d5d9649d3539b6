"""Pure DataFrame -> DataFrame functions shared by the streaming jobs and batch replay.

No I/O here: every function takes and returns DataFrames (plus plain values), so each is unit
tested with a local SparkSession and runs unchanged inside a streaming query or a bounded replay.
"""

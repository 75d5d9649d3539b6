"""A batch with a writer schema id the decoder lacks fails with a Spark error condition that the job
reads as a value (the id), through every wrapper a batch's failure can come in."""
import pytest
from pyspark.sql import functions as F

from streaming import decode


def _guarded(spark, bad_id: int):
    df = spark.range(10).withColumn(
        "e", F.when(F.col("id") == 3, F.lit(f"{decode.UNKNOWN_ID}{bad_id}")).otherwise(F.lit("other error")))
    guarded = df.select("id", decode.guard_known(F.col("e")).alias("e")).repartition(2, "id")
    return guarded.mapInArrow(lambda batches: batches, guarded.schema)


def test_the_unknown_id_is_read_from_a_failed_batch_and_its_wrappers(spark, tmp_path):
    with pytest.raises(Exception) as noop:
        _guarded(spark, 42).write.format("noop").mode("overwrite").save()
    assert decode.unknown_ids(noop.value) == [42]
    with pytest.raises(Exception) as delta:  # a replay chunk's Delta write wraps the task's failure
        _guarded(spark, 43).write.format("delta").mode("append").save(str(tmp_path / "lake"))
    assert decode.unknown_ids(delta.value) == [43]
    try:
        raise RuntimeError("the batch failed") from noop.value
    except RuntimeError as wrapped:
        assert decode.unknown_ids(wrapped) == [42]


def test_other_failures_carry_no_unknown_id(spark):
    assert decode.unknown_ids(ValueError(f"{decode.UNKNOWN_ID}7")) == []  # text alone is not the signal
    with pytest.raises(Exception) as failed:
        spark.range(3).select(F.raise_error(F.lit("something else"))).collect()
    assert decode.unknown_ids(failed.value) == []

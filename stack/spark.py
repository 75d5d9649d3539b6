"""The connector jars a local SparkSession needs, resolved from Maven Central ahead of time.

The pyspark wheel ships Spark itself but not the Kafka source, spark-avro, s3a (hadoop-aws) or
the PostgreSQL JDBC driver. ``stack/maven/spark/pom.xml`` names them at the versions of the
pinned pyspark; Maven resolves them once into ``~/.m2`` and Spark gets the exact jar list
(``spark.jars``), so starting a session needs no network and no Ivy resolution.
"""
from __future__ import annotations

import re
from pathlib import Path

import pyspark

from stack.paths import STACK_DIR
from stack.process import ServiceError
from stack.provision import maven_classpath

_VERSION_SUFFIX = re.compile(r"-\d[^-]*(?:-[A-Za-z0-9.]+)?\.jar$")


def _artifact(jar: str) -> str:
    return _VERSION_SUFFIX.sub("", Path(jar).name)


def connector_jars() -> list[str]:
    """Jars to add to the pyspark distribution (what it already ships is left out)."""
    pom = (STACK_DIR / "maven" / "spark" / "pom.xml").read_text()
    wanted = re.search(r"<spark.version>([^<]+)</spark.version>", pom).group(1)
    if wanted != pyspark.__version__:
        raise ServiceError(
            f"pyspark {pyspark.__version__} is installed but stack/maven/spark/pom.xml resolves "
            f"Spark {wanted} connectors: keep the pyspark pin in pyproject.toml and spark.version equal"
        )
    return not_shipped(maven_classpath("spark"))


def not_shipped(jars: list[str]) -> list[str]:
    """The jars whose artifact the pyspark distribution does not ship already (Spark's own win)."""
    shipped = {_artifact(j.name) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [jar for jar in jars if _artifact(jar) not in shipped]


if __name__ == "__main__":
    import shutil
    import sys

    if sys.argv[1:2] == ["--into-pyspark"]:
        # The image (Dockerfile): put the resolved jars in a folder into pyspark's own jars folder,
        # so every driver and executor has them on its classpath.
        for jar in not_shipped([str(p) for p in sorted(Path(sys.argv[2]).glob("*.jar"))]):
            shutil.copy(jar, Path(pyspark.__file__).parent / "jars")
    else:
        # For spark-submit, whose driver JVM starts before any builder setting: --jars "$(python -m stack.spark)"
        print(",".join(connector_jars()))

# The platform's image: every connector, pipeline, replay and exporter runs from it (k8s/), as the
# Spark operator's driver and executors too. Build it where a container runtime and a registry are:
#   docker build -t registry.example.com/data/kappa-platform:0.1.0 .
# Python 3.11, Java 17, pyspark (Spark itself) with the Maven-resolved connector jars beside its
# own, the platform's code in /opt/kappa; a non-root user; no compiler or build tool in the last stage.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Only for Spark's Kubernetes entry point (driver/executor start-up), which the pyspark wheel lacks.
ARG SPARK_IMAGE=apache/spark:4.2.0-scala2.13-java17-ubuntu

# -- the connector jars: stack/maven/spark/pom.xml, what a local session resolves, from Maven Central
FROM maven:3.9-eclipse-temurin-17 AS jars
COPY stack/maven/spark/pom.xml /build/pom.xml
RUN mvn -q -B -f /build/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=/jars

# -- the Python environment: the pinned dependencies of pyproject.toml, in a virtualenv
FROM ${PYTHON_IMAGE} AS python
COPY pyproject.toml /build/pyproject.toml
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('/build/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /build/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir -r /build/requirements.txt
# Into pyspark's jars folder, each resolved jar whose artifact Spark does not ship already (Spark's own
# win): the same choice stack/spark.py makes for a local session.
COPY --from=jars /jars /jars
COPY stack/ /build/stack/
RUN cd /build && /opt/venv/bin/python -m stack.spark --into-pyspark /jars

FROM ${SPARK_IMAGE} AS spark

# -- the image
FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini procps \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /usr/lib/jvm/java-17 \
 && groupadd --gid 10001 kappa \
 && useradd --uid 10001 --gid kappa --home-dir /opt/kappa --no-create-home --shell /usr/sbin/nologin kappa
COPY --from=python /opt/venv /opt/venv
COPY --from=spark /opt/entrypoint.sh /opt/decom.sh /opt/
WORKDIR /opt/kappa
COPY kappa/ kappa/
COPY schemas/ schemas/
COPY connectors/ connectors/
COPY streaming/ streaming/
COPY batch_replay/ batch_replay/
COPY monitoring/ monitoring/
# KAPPA_SPARK__JARS: the connector jars are in Spark's own folder, so a session adds none.
# The development stack (stack/), demo/, bench/ and tests/ stay out: the product does not import them.
# KAPPA_STACK__HOME, SPARK_LOCAL_DIRS: local state (a replay's scratch, Spark's) on the writable /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    JAVA_HOME=/usr/lib/jvm/java-17 \
    SPARK_HOME=/opt/venv/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=/opt/venv/bin/python \
    PYTHONPATH=/opt/kappa \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KAPPA_SPARK__JARS=[] \
    KAPPA_STACK__HOME=/tmp/kappa \
    SPARK_LOCAL_DIRS=/tmp/spark
USER 10001
# Spark's entry point starts a driver or executor when the Spark operator asks for one, and any
# other command (a connector's, a replay's) as it is, under tini.
ENTRYPOINT ["/opt/entrypoint.sh"]
CMD ["python", "-m", "kappa", "--help"]

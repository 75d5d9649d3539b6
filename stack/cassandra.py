"""Apache Cassandra 5.0 from the Maven Central jars, run by ``CassandraDaemon`` on Java 17.

The JVM flags are the development subset of upstream ``conf/jvm-server.options`` and
``conf/jvm17-server.options``; ``bin/cassandra`` is not used because the jars come without it.
"""
from __future__ import annotations

import os
from pathlib import Path
from string import Template

from stack import ports
from stack.paths import STACK_DIR
from stack.provision import java17_home, maven_classpath
from stack.service import Service

CONF = STACK_DIR / "conf" / "cassandra"

# Module access Cassandra needs on Java 17 (upstream jvm17-server.options).
_JAVA17_MODULE_FLAGS = [
    "-Djdk.attach.allowAttachSelf=true",
    *[f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
        "java.management/com.sun.jmx.remote.security", "java.rmi/sun.rmi.registry",
        "java.rmi/sun.rmi.server", "java.sql/java.sql", "java.base/java.lang.ref",
        "jdk.unsupported/sun.misc", "jdk.attach/sun.tools.attach",
        "jdk.compiler/com.sun.tools.javac.file",
    )],
    *[f"--add-opens={m}=ALL-UNNAMED" for m in (
        "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
        "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
        "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal",
        "java.base/sun.nio.ch", "java.base/java.io", "java.base/java.lang.reflect",
        "java.base/java.lang", "java.base/java.util", "java.base/java.nio",
        "jdk.compiler/com.sun.tools.javac",
    )],
]


class Cassandra(Service):
    name = "cassandra"
    port = ports.CASSANDRA_CQL
    start_timeout = 240.0  # a first start on 2 busy cores takes about a minute
    stop_grace = 30.0

    def provision(self) -> None:
        self._jars = maven_classpath("cassandra")

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "cassandra.yaml").write_text(
            Template((CONF / "cassandra.yaml").read_text()).substitute(
                storage_port=ports.CASSANDRA_STORAGE, cql_port=ports.CASSANDRA_CQL
            )
        )

    def command(self) -> list[str]:
        jamm = next(j for j in self._jars if Path(j).name.startswith("jamm-"))
        return [
            str(java17_home() / "bin" / "java"),
            "-Xms1g", "-Xmx1g", "-Xss256k",
            "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1",
            "-XX:G1HeapRegionSize=16m", "-XX:G1RSetUpdatingPauseTimePercent=5",
            "-XX:MaxGCPauseMillis=300", "-XX:InitiatingHeapOccupancyPercent=70",
            "-XX:+PerfDisableSharedMem", "-XX:+UseThreadPriorities",
            "-Djava.net.preferIPv4Stack=true", "-Dchronicle.analytics.disable=true",
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Dio.netty.allocator.useCacheForAllThreads=true", "-Dio.netty.allocator.maxOrder=11",
            *_JAVA17_MODULE_FLAGS,
            f"-javaagent:{jamm}",
            f"-Dlogback.configurationFile={CONF / 'logback.xml'}",
            f"-Dcassandra.logdir={self.home}",
            f"-Dcassandra.storagedir={self.data_dir}",
            f"-Dcassandra.config=file://{self.home / 'cassandra.yaml'}",
            # Without foreground mode the daemon closes stdout/stderr and we lose start-up errors.
            "-Dcassandra-foreground=yes",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=0",
            # Schema changes without fsync of the system tables: tests create and drop tables often.
            "-Dcassandra.unsafesystem=true",
            "-cp", os.pathsep.join([str(CONF), *self._jars]),
            "org.apache.cassandra.service.CassandraDaemon",
        ]

"""Apache Kafka 4.1 in KRaft mode (one combined broker + controller) from the Maven Central jars."""
from __future__ import annotations

import os
import subprocess
import uuid
from string import Template

from stack import ports
from stack.paths import STACK_DIR
from stack.process import ServiceError
from stack.provision import java17_home, maven_classpath
from stack.service import Service

CONF = STACK_DIR / "conf" / "kafka"


class Kafka(Service):
    name = "kafka"
    port = ports.KAFKA
    start_timeout = 120.0

    def provision(self) -> None:
        self._classpath = os.pathsep.join(maven_classpath("kafka"))

    @property
    def server_properties(self):
        return self.home / "server.properties"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        text = Template((CONF / "server.properties").read_text()).substitute(
            port=ports.KAFKA, controller_port=ports.KAFKA_CONTROLLER, log_dirs=self.data_dir
        )
        self.server_properties.write_text(text)
        if (self.data_dir / "meta.properties").exists():
            return
        # `format --standalone` makes this node the whole KRaft quorum; it runs once per data folder.
        result = subprocess.run(
            [str(java17_home() / "bin" / "java"), "-Xmx256m",
             f"-Dlog4j2.configurationFile={CONF / 'tools-log4j2.properties'}",
             "-cp", self._classpath, "kafka.tools.StorageTool", "format", "--standalone",
             "-t", _cluster_id(), "-c", str(self.server_properties), "--ignore-formatted"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"kafka: formatting {self.data_dir} failed:\n{result.stdout}{result.stderr}")

    def command(self) -> list[str]:
        return [
            str(java17_home() / "bin" / "java"),
            "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.home}",
            f"-Dlog4j2.configurationFile={CONF / 'log4j2.properties'}",
            "-cp", self._classpath, "kafka.Kafka", str(self.server_properties),
        ]

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        if not super().healthy():
            return False
        try:
            admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.port}", "log_level": 0})
            admin.list_topics(timeout=2)
            return True
        except Exception:
            return False


def _cluster_id() -> str:
    """A random KRaft cluster id: 16 random bytes, URL-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# The release tarball's bin/ scripts, by their name without ``kafka-`` and ``.sh``, and the class each runs.
TOOLS = {"consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
         "topics": "org.apache.kafka.tools.TopicCommand",
         "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
         "get-offsets": "org.apache.kafka.tools.GetOffsetShell"}


def tool_command(tool: str, args: list[str]) -> list[str]:
    """``kafka-<tool>.sh <args>`` of the stack's Kafka version, against the stack's broker unless
    ``args`` name a ``--bootstrap-server``."""
    if tool not in TOOLS:
        raise ServiceError(f"unknown Kafka tool {tool!r}: one of {', '.join(TOOLS)}")
    if "--bootstrap-server" not in args:
        args = ["--bootstrap-server", f"127.0.0.1:{ports.KAFKA}", *args]
    return [str(java17_home() / "bin" / "java"), "-Xmx256m",
            f"-Dlog4j2.configurationFile={CONF / 'tools-log4j2.properties'}",
            "-cp", os.pathsep.join(maven_classpath("kafka")), TOOLS[tool], *args]

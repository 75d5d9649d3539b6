"""Run the file connector until SIGTERM."""
from connectors import metrics
from connectors.files.connector import FilesConfig, FilesConnector
from connectors.runtime import StopFlag, configure_logging, load_config, parse_args
from settings import get_settings


def main() -> None:
    args = parse_args("Publish rows of CSV, JSON Lines and Parquet files to Kafka as Avro")
    config = load_config(args.config, FilesConfig)
    configure_logging(config.name, args.log_level)
    metrics.serve(config.name, config.metrics_port)
    FilesConnector(config, get_settings(), StopFlag().install()).run()


if __name__ == "__main__":
    main()

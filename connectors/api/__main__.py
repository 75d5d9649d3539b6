"""Run the API connector until SIGTERM."""
from connectors import metrics
from connectors.api.connector import ApiConfig, ApiConnector
from connectors.runtime import StopFlag, configure_logging, load_config, parse_args
from settings import get_settings


def main() -> None:
    args = parse_args("Poll an HTTP JSON API and publish its records to Kafka as Avro")
    config = load_config(args.config, ApiConfig)
    configure_logging(config.name, args.log_level)
    metrics.serve(config.name, config.metrics_port)
    ApiConnector(config, get_settings(), StopFlag().install()).run()


if __name__ == "__main__":
    main()

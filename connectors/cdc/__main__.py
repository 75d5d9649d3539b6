"""Run the CDC connector until SIGTERM."""
from connectors import metrics
from connectors.cdc.connector import CdcConfig, CdcConnector
from connectors.runtime import StopFlag, configure_logging, load_config, parse_args
from settings import get_settings


def main() -> None:
    args = parse_args("PostgreSQL change data capture to Kafka (Debezium envelope, Avro)")
    config = load_config(args.config, CdcConfig)
    configure_logging(config.name, args.log_level)
    metrics.serve(config.name, config.metrics_port)
    CdcConnector(config, get_settings(), StopFlag().install()).run()


if __name__ == "__main__":
    main()

"""Run the api connector until SIGTERM."""
from connectors.api.connector import ApiConfig, ApiConnector
from connectors.runtime import main

if __name__ == "__main__":
    main("Poll an HTTP JSON API and publish its records to Kafka as Avro", ApiConfig, ApiConnector)

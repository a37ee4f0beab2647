"""tickwire ingest: producers post trades and quotes over HTTP; a 202 means Kafka has them."""

"""Equipment fault diagnosis and prediction: bearing diagnosis, remaining useful life, failure, anomalies."""

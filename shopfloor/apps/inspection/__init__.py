"""Visual quality inspection: defect classification, localisation and anomaly detection on surface images."""

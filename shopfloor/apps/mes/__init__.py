"""Production tracking (MES): production model, ISO 22400 KPIs, genealogy and a tamper-evident event record."""

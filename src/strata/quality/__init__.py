"""Data quality: declarative checks on models, compiled into few scans, judged per tenant,
kept as history, gating promotion between layers and raising alerts."""

"""Self-consistency curation (step 3): items and extraction, encoders, scoring, report."""

"""`sicog convert NAME`: public datasets into sicog's LLaVA JSONL (one module per source)."""

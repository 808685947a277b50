"""Step 2 internals: sample items, the run orchestration, and the hf / openai backends."""

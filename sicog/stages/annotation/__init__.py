"""Step 1's annotation: Chain-of-Description captions from a vision model behind any
OpenAI-compatible endpoint (config, prompt, items, client, journal, runner)."""

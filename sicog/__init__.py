"""sicog: Self-Improving Cognition (SICOG) for multimodal LLMs.

One loop, four steps: warm-up -> sample -> curate -> pre-train. See README.md.
"""

__version__ = "0.1.0"

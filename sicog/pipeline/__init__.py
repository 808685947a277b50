"""`sicog run`: the whole loop from one YAML (config, plan, engine, launch, actions, report).

Entry points: `load_pipeline(path, overrides)` and `run_pipeline(cfg)` (sicog.pipeline.cli).
"""

"""Preference optimisation (DPO / IPO) on self-consistency pairs: config, objective, trainer."""

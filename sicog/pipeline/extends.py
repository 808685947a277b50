"""`extends:` of a pipeline YAML: another pipeline YAML with this file's keys merged on top.

Mappings merge key by key; anything else (lists included: `arms`) is replaced. Stage config paths
(`stages.*.config`, `post_training.dpo.config`) are relative to the YAML that sets them, so those
of an extended file are made absolute before the merge. The ablation configs
(configs/pipeline/ablations/) hold only what makes their ablation and extend a full pipeline.
"""

from __future__ import annotations

from pathlib import Path

from sicog.config import ConfigError
from sicog.pipeline.config import expand_env
from sicog.utils.yaml_files import read_yaml

#: keys whose relative paths are relative to the YAML that sets them (stage configs)
_CONFIG_PATH_KEYS = [("stages", name, "config") for name in ("align", "warmup_perception", "warmup_reasoning",
                                                              "pretrain", "sft")] + [("post_training", "dpo", "config")]


def extended_mapping(path: Path, extends: str | None = None, seen: tuple = ()) -> dict:
    """The raw mapping of a pipeline YAML with its `extends` chain merged (see load_pipeline).

    Stage config paths of an extended file are made absolute (they are relative to its own folder).
    """
    if path.resolve() in seen:
        raise ConfigError(f"{path}: key extends: a cycle ({' -> '.join(str(p) for p in (*seen, path.resolve()))})")
    if not path.is_file():
        raise ConfigError(f"{seen[-1] if seen else path}: key extends: file not found: {path}")
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    parent = data.pop("extends", None)
    if extends is not None:
        parent = str(Path(extends).resolve()) if extends else None  # `--set extends=` (empty): none
    elif parent is not None:
        parent = str(path.parent / expand_env(str(parent), "extends"))
    if not parent:
        return data
    base = extended_mapping(Path(parent), None, (*seen, path.resolve()))
    for keys in _CONFIG_PATH_KEYS:
        node = base
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(keys[-1]), str) and not Path(node[keys[-1]]).is_absolute():
            node[keys[-1]] = str((Path(parent).parent / node[keys[-1]]).resolve())
    return _merged(base, data)


def _merged(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out

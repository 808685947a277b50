"""sicog's vLLM plugin: serves `arch: uhd` checkpoints (`model_type: sicog_uhd`) in vLLM.

vLLM has no LLaVA-UHD model, so this package adds one out of tree. `register` is the entry point
of the `vllm.general_plugins` group (pyproject.toml): vLLM calls it in each of its processes, and
it registers the architecture name the checkpoints' config.json carries with vLLM's model
registry, as a lazy "module:class" reference, so vLLM is only imported by vLLM itself.

Only vLLM loads the two modules beside this one (`uhd_processing`: slicing and the token layout
for vLLM's multimodal processor; `uhd_model`: tower, resampler and LM); nothing else in sicog
imports them, and `import sicog` works without vLLM. docs/serving.md covers installing it into
the vLLM venv (scripts/vllm_env.sh does) and what it reproduces.
"""

from __future__ import annotations

#: the architecture name in every `uhd` checkpoint's config.json (`architectures`)
ARCHITECTURE = "SicogUhdForConditionalGeneration"
#: where vLLM finds the model class (imported by vLLM only when a checkpoint asks for it)
MODEL_CLASS = "sicog.model.vllm_uhd.uhd_model:SicogUhdForVllm"


def register() -> None:
    """The `vllm.general_plugins` entry point; vLLM may call it more than once per process."""
    from vllm import ModelRegistry

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, MODEL_CLASS)

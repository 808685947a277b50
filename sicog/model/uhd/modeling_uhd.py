"""The LLaVA-UHD model: vision tower on variable-size slices, spatial resampler, causal LM. Remote code.

Laid out like transformers' LLaVA (`model.vision_tower`, `model.multi_modal_projector` = the
resampler, `model.language_model`, `lm_head`) so that tools addressing those parts by name (tunable
parts, LoRA targets, projector files) treat both architectures alike.

`forward` embeds the text, runs the vision tower once over all slices of the batch (zero-padded to
the longest slice, padding masked out of attention), resamples every slice to side^2 tokens,
stitches each image's slices into its feature map in the layout order of `slicing_uhd.layout_tokens`
and writes the features into the `<image>` positions of the sequence. The separators of the layout
are ordinary tokens of the text (their embeddings are learned like any other token's).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_uhd import SicogUhdConfig
from .resampler_uhd import SpatialResampler, sincos_table

#: attention implementations that take the tower's 4-D padding mask (`SicogUhdModel.tower_attention`)
TOWER_ATTENTION = ("eager", "sdpa")


class SicogUhdPreTrainedModel(PreTrainedModel):
    config_class = SicogUhdConfig
    base_model_prefix = ""
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _no_split_modules = ["SpatialResampler"]

    def _init_weights(self, module):
        std = 0.02
        if isinstance(module, SpatialResampler):
            init.trunc_normal_(module.query, std=std)
            init.normal_(module.proj, std=module.embed_dim ** -0.5)
            init.copy_(module.pos_embed, sincos_table(module.embed_dim, module.side))
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
            init.zeros_(module.out_proj.bias)


class SicogUhdModel(SicogUhdPreTrainedModel):
    """Vision tower + resampler + the LM's base model; returns the LM's hidden states."""

    def __init__(self, config: SicogUhdConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.multi_modal_projector = SpatialResampler(config.query_side, config.text_config.hidden_size,
                                                      config.resampler_heads, config.vision_config.hidden_size,
                                                      box_rounding=config.resampler_box_rounding)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()
        self.tower_attention()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    # ------------------------------------------------------------------ vision
    def tower_attention(self) -> str:
        """The attention the tower runs: its slices are padded to one length and masked with a 4-D
        additive mask, which only eager and sdpa attention take (flash-attention unpads from a 2-D
        0/1 mask and would mix padding into the slices), so any other choice made for the model
        (e.g. flash_attention_2 for the LM) runs the tower under sdpa, as the authors' tower does."""
        tower_config = self.vision_tower.config
        if tower_config._attn_implementation not in TOWER_ATTENTION:
            tower_config._attn_implementation_internal = "sdpa"
        return tower_config._attn_implementation

    def _selected_layer(self, encoder) -> int:
        n = len(encoder.layers)
        k = self.config.vision_feature_layer
        return k if k >= 0 else n + 1 + k  # hidden_states[k] is the output of the first k layers

    def encode_slices(self, pixel_values: torch.Tensor, slice_sizes: torch.Tensor) -> list[torch.Tensor]:
        """Features (h*w patches, vision width) of every slice, from one padded tower call.

        Every submodule runs once per call whatever the number and sizes of the slices (under
        DeepSpeed ZeRO-3 each module call gathers its weights collectively, so all ranks must make
        the same calls): the patch convolution over all slices at once, the embedding module once
        on a blank image of the tower's own size (its output minus the convolution of blank pixels
        is the position table, plus the class token's embedding for CLIP), each slice's positions
        resized (bicubic) from that table, then the encoder on the zero-padded, masked sequences.
        """
        self.tower_attention()
        tower = getattr(self.vision_tower, "vision_model", self.vision_tower)  # older layouts nest it
        embeddings = tower.embeddings
        vcfg = self.config.vision_config
        patch, native = vcfg.patch_size, vcfg.image_size // vcfg.patch_size
        dtype = embeddings.patch_embedding.weight.dtype
        blank = torch.zeros(1, 3, vcfg.image_size, vcfg.image_size, dtype=dtype, device=pixel_values.device)
        fixed = embeddings(blank)[0]  # (extra + native^2, width)
        convolved = embeddings.patch_embedding(torch.cat([pixel_values.to(dtype), torch.zeros_like(pixel_values[:1],
                                                                                                   dtype=dtype)]))
        bias = convolved[-1, :, 0, 0]  # what the convolution gives blank pixels (SigLIP: its bias)
        extra = fixed.shape[0] - native * native  # CLIP's class token
        table = (fixed[extra:] - bias).reshape(1, native, native, -1).permute(0, 3, 1, 2)
        embeds, grids, positions = [], [], {(native, native): table[0].flatten(1).T}
        for k, (h, w) in enumerate(slice_sizes.tolist()):
            gh, gw = h // patch, w // patch
            tokens = convolved[k, :, :gh, :gw].flatten(1).T
            if (gh, gw) not in positions:  # resized once per slice size of the batch
                pos = nn.functional.interpolate(table.float(), size=(gh, gw), mode="bicubic", align_corners=False)
                positions[(gh, gw)] = pos.to(dtype)[0].flatten(1).T
            embeds.append(torch.cat([fixed[:extra], tokens + positions[(gh, gw)]]))
            grids.append((gh, gw))
        longest = max(e.shape[0] for e in embeds)
        hidden = torch.stack([nn.functional.pad(e, (0, 0, 0, longest - e.shape[0])) for e in embeds])
        mask = None
        if any(e.shape[0] < longest for e in embeds):
            valid = torch.tensor([e.shape[0] for e in embeds], device=hidden.device)
            keep = torch.arange(longest, device=hidden.device)[None] < valid[:, None]
            mask = torch.zeros(len(embeds), 1, longest, longest, dtype=hidden.dtype, device=hidden.device)
            mask = mask.masked_fill(~keep[:, None, None, :], torch.finfo(hidden.dtype).min)
        if hasattr(tower, "pre_layrnorm"):
            hidden = tower.pre_layrnorm(hidden)
        for layer in tower.encoder.layers[: self._selected_layer(tower.encoder)]:
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out
        first = 0 if self.config.vision_feature_select == "cls_patch" else extra
        return [hidden[k, first: first + h * w] for k, (h, w) in enumerate(grids)]

    def get_image_features(self, pixel_values, slice_sizes, image_grids) -> torch.Tensor:
        """(all images' visual tokens, LM width) in the order of the token layout."""
        patch = self.config.vision_config.patch_size
        feats = self.encode_slices(pixel_values, slice_sizes)
        grids = [(h // patch, w // patch) for h, w in slice_sizes.tolist()]
        tokens = self.multi_modal_projector(feats, grids)  # (slices, side^2, C)
        side, out, k = self.config.query_side, [], 0
        for cols, rows in image_grids.tolist():
            n = cols * rows
            if n:
                cells = tokens[k: k + n].reshape(rows, cols, side, side, -1).permute(0, 2, 1, 3, 4)
                out.append(cells.reshape(rows * side * cols * side, -1))
            out.append(tokens[k + n])
            k += n + 1
        if k != tokens.shape[0]:
            raise ValueError(f"image_grids account for {k} slices, pixel_values holds {tokens.shape[0]}")
        return torch.cat(out)

    def _idle_vision_pass(self, like: torch.Tensor) -> torch.Tensor:
        size = self.config.vision_config.patch_size * self.config.query_side
        pixels = torch.zeros(1, 3, size, size, dtype=like.dtype, device=like.device)
        sizes = torch.tensor([[size, size]], device=like.device)
        return self.get_image_features(pixels, sizes, torch.zeros(1, 2, dtype=torch.long)).sum()

    def forward(self, input_ids=None, pixel_values=None, slice_sizes=None, image_grids=None, attention_mask=None,
                position_ids=None, cache=None, inputs_embeds=None, **kwargs):
        if inputs_embeds is None:
            is_image = input_ids == self.config.image_token_id
            inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(is_image, 0))
            if pixel_values is not None and pixel_values.shape[0] > 0:
                feats = self.get_image_features(pixel_values, slice_sizes, image_grids).to(inputs_embeds.dtype)
                if int(is_image.sum()) != feats.shape[0]:
                    raise ValueError(f"the text holds {int(is_image.sum())} image tokens, the images give "
                                     f"{feats.shape[0]} features")
                inputs_embeds = inputs_embeds.masked_scatter(is_image[..., None], feats)
            elif self.training:
                # every rank runs the vision path on every step (ZeRO-3 gathers its weights
                # collectively), so a text-only batch takes a zero-weighted pass through it
                inputs_embeds = inputs_embeds + 0.0 * self._idle_vision_pass(inputs_embeds)
        return self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                   position_ids=position_ids, cache=cache, **kwargs)


class SicogUhdForConditionalGeneration(SicogUhdPreTrainedModel, GenerationMixin):
    """High-resolution LLaVA: `pixel_values` / `slice_sizes` / `image_grids` as the image
    processor of this architecture writes them, `input_ids` with the layout the processor expands."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: SicogUhdConfig):
        super().__init__(config)
        self.model = SicogUhdModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def get_image_features(self, pixel_values, slice_sizes, image_grids):
        return self.model.get_image_features(pixel_values, slice_sizes, image_grids)

    def forward(self, input_ids=None, pixel_values=None, slice_sizes=None, image_grids=None, attention_mask=None,
                position_ids=None, cache=None, inputs_embeds=None, labels=None, logits_to_keep=0, **kwargs):
        outputs = self.model(input_ids=input_ids, pixel_values=pixel_values, slice_sizes=slice_sizes,
                             image_grids=image_grids, attention_mask=attention_mask, position_ids=position_ids,
                             cache=cache, inputs_embeds=inputs_embeds, **kwargs)
        hidden = outputs.last_hidden_state
        if isinstance(logits_to_keep, int):
            hidden = hidden[:, -logits_to_keep:] if logits_to_keep else hidden
        else:
            hidden = hidden[:, logits_to_keep]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size,
                                      **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=outputs.cache,
                                      hidden_states=outputs.hidden_states, attentions=outputs.attentions)

    def _expand_inputs_for_generation(self, expand_size: int = 1, is_encoder_decoder: bool = False,
                                      input_ids=None, **model_kwargs):
        """Repeat each image's group of slices with its sample (their first dimension is slices, not
        samples, so the stock row-wise repeat would mix images up); the rest as usual."""
        pixels, sizes, grids = (model_kwargs.pop(k, None) for k in ("pixel_values", "slice_sizes", "image_grids"))
        input_ids, model_kwargs = super()._expand_inputs_for_generation(expand_size, is_encoder_decoder, input_ids,
                                                                        **model_kwargs)
        if pixels is not None and expand_size > 1:
            counts = [int(c) * int(r) + 1 for c, r in grids.tolist()]
            order = torch.cat([torch.arange(start, start + n).repeat(expand_size)
                               for start, n in zip(torch.tensor([0, *counts[:-1]]).cumsum(0).tolist(), counts)])
            pixels, sizes = pixels[order.to(pixels.device)], sizes[order.to(sizes.device)]
            grids = grids.repeat_interleave(expand_size, dim=0)
        if pixels is not None:
            model_kwargs.update(pixel_values=pixels, slice_sizes=sizes, image_grids=grids)
        return input_ids, model_kwargs

    def prepare_inputs_for_generation(self, *args, is_first_iteration: bool = False, **kwargs):
        inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        if not is_first_iteration and kwargs.get("use_cache", True):
            for key in ("pixel_values", "slice_sizes", "image_grids"):
                inputs.pop(key, None)
        return inputs

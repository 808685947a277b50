"""Processor of the LLaVA-UHD model: the image processor plus the tokenizer. Remote code.

Each `<image>` of the text, in order, is replaced by its image's token layout (slicing_uhd):
`<image>` once per visual feature, `row_token` after every feature row of the slice map,
`slice_token` (or the row token, for one slice per row) between the map and the overview.
"""

from __future__ import annotations

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

_TOKENIZER_KWARGS = ("padding", "truncation", "max_length", "return_tensors", "add_special_tokens",
                     "return_attention_mask", "padding_side", "pad_to_multiple_of", "return_offsets_mapping",
                     "return_token_type_ids", "return_length", "stride", "verbose")


class SicogUhdProcessor(ProcessorMixin):
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, image_token: str = "<image>",
                 row_token: str = "<uhd_row>", slice_token: str = "<uhd_slice>", **kwargs):
        self.image_token, self.row_token, self.slice_token = image_token, row_token, slice_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def layout_text(self, grid, side: int) -> str:
        """The placeholder text of one image with slice grid (cols, rows), (0, 0) = not sliced."""
        cols, rows = (int(v) for v in grid)
        overview = self.image_token * (side * side)
        if cols * rows == 0:
            return overview
        row = self.image_token * (cols * side) + self.row_token
        return row * (rows * side) + (self.slice_token if cols > 1 else self.row_token) + overview

    def expand(self, texts: list[str], image_grids) -> list[str]:
        """`texts` with each `<image>` replaced by the layout of the next image."""
        side = self.image_processor.query_side
        grids = [tuple(g) for g in (image_grids.tolist() if hasattr(image_grids, "tolist") else image_grids)]
        out, k = [], 0
        for text in texts:
            parts = text.split(self.image_token)
            pieces = [parts[0]]
            for rest in parts[1:]:
                if k >= len(grids):
                    raise ValueError(f"the text holds more {self.image_token} than the {len(grids)} image(s) given")
                pieces += [self.layout_text(grids[k], side), rest]
                k += 1
            out.append("".join(pieces))
        if k != len(grids):
            raise ValueError(f"{len(grids)} image(s) given but the text holds {k} {self.image_token}")
        return out

    def __call__(self, images=None, text=None, videos=None, audio=None, **kwargs) -> BatchFeature:
        if videos is not None or audio is not None:
            raise ValueError("this processor takes images and text only")
        for nested in ("text_kwargs", "common_kwargs"):
            kwargs.update(kwargs.pop(nested, None) or {})
        for nested in ("images_kwargs", "videos_kwargs", "audio_kwargs"):
            kwargs.pop(nested, None)
        return_tensors = kwargs.get("return_tensors")
        single = isinstance(text, str)
        texts = [text] if single else list(text or [])
        data = {}
        if images is not None:
            image_inputs = self.image_processor(images, return_tensors=return_tensors)
            image_inputs.pop("num_image_tokens")  # known from the expanded text; not a model input
            texts = self.expand(texts, image_inputs["image_grids"])
            data.update(image_inputs)
        elif any(self.image_token in t for t in texts):
            raise ValueError(f"the text holds {self.image_token} but no image was given")
        if texts:
            tok_kwargs = {k: v for k, v in kwargs.items() if k in _TOKENIZER_KWARGS}
            encoded = self.tokenizer(texts[0] if single else texts, **tok_kwargs)
            data.update(encoded)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self):
        return list(dict.fromkeys(self.tokenizer.model_input_names + ["pixel_values", "slice_sizes", "image_grids"]))

"""Tiny offline tokenizer (byte-level BPE trained on a generated corpus) and the chat template.

The `tiny` preset must build with no download, so its tokenizer is trained here with the
`tokenizers` library on a corpus the project generates: every prompt and step header of
`sicog.data.formats`, a word list for the synthetic shapes world, and any extra texts the
caller passes. Training is deterministic (fixed corpus order, no randomness in BPE).

`CHAT_TEMPLATE` is Qwen's ChatML, extended to accept Hugging Face multimodal message content
(lists of `{"type": "image"}` / `{"type": "text"}` parts) and to mark assistant replies with
`{% generation %}` so `return_assistant_tokens_mask=True` works for label masking.
"""

from __future__ import annotations

from typing import Iterable

from sicog.data import formats

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
IMAGE_TOKEN = formats.IMAGE_TOKEN
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END, IMAGE_TOKEN)

# Qwen ChatML. An image part renders as "<image>\n" (docs/method.md: `<image>` then a newline at the
# start of the first user turn); text parts render verbatim. The supervised span of an assistant
# turn is its text plus the closing <|im_end|> (docs/method.md "Chat format"), not the trailing "\n".
CHAT_TEMPLATE = (
    "{%- macro render_content(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' or part['type'] == 'image_url' -%}{{ '" + IMAGE_TOKEN + "\\n' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{ '" + IM_START + "system\\n" + formats.SYSTEM_PROMPT + IM_END + "\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '" + IM_START + "assistant\\n' }}"
    "{%- generation -%}{{ render_content(message['content']) + '" + IM_END + "' }}{%- endgeneration -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '" + IM_START + "' + message['role'] + '\\n' + render_content(message['content']) + '"
    + IM_END + "\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '" + IM_START + "assistant\\n' }}{%- endif -%}"
)

# Words of the synthetic shapes world and of everyday answers, so that the tiny vocabulary
# merges them into few tokens.
_WORDS = """
red green blue yellow orange purple pink brown black white gray grey cyan magenta colour color colours colors
circle circles square squares triangle triangles rectangle rectangles star stars hexagon hexagons
diamond diamonds ellipse ellipses oval ovals pentagon pentagons cross crosses heart hearts shape shapes object objects
small medium large big tiny huge size sizes larger smaller largest smallest bigger biggest
zero one two three four five six seven eight nine ten eleven twelve
0 1 2 3 4 5 6 7 8 9 10 11 12
left right top bottom center centre middle above below beside next near far between corner corners
upper lower side edge background foreground row column position positions
how many count number total more fewer less most least same different equal than as
is are was were there this that these those it its they them a an the of in on at to and or
with without for from by what which where who why whether not no yes both each every all any
some only also then so because if image picture scene shown contains containing appears visible
left-most right-most leftmost rightmost first second third last question answer answers
The answer is Step Answer Question Describe describe image step step-by-step detailed caption
plain empty canvas filled outlined solid striped dotted
"""

_PUNCTUATION = ". , ; : ! ? ' \" ( ) [ ] { } - _ / \\ + = * % # @ & < > | ~ ` ^ $"


def _format_strings() -> list[str]:
    """The format texts of sicog.data.formats the tiny tokenizer learns from, in a fixed order.

    Listed by name rather than found by scanning the module, so that adding a constant to formats
    does not silently change every tiny model; the order (and the two recap-script prompts seen a
    second time) is the corpus every tiny model and cached stand-in so far was trained with.
    """
    f = formats
    return [*f.BRIEF_CAPTION_PROMPTS, f.CAPTION_PROMPT, f.CAPTION_REQUEST, f.COD_PROMPT, *f.COD_STEP_HEADERS,
            f.COD_SUFFIX, *f.COT_STEP_HEADERS, f.IMAGE_TOKEN, f.MCQ_LETTER_INSTRUCTION,
            f.COD_PROMPT, f.CAPTION_PROMPT,  # the recap scripts' "cod-default" and "default" prompts
            f.SHORT_ANSWER_INSTRUCTION, f.STEP_BY_STEP_INSTRUCTION, f.SYSTEM_PROMPT]


def tokenizer_corpus(extra_texts: Iterable[str] = ()) -> list[str]:
    """The training corpus of the tiny tokenizer, in a fixed order (determinism)."""
    words = _WORDS.split()
    texts = _format_strings()
    texts += [" ".join(words), " ".join(w.capitalize() for w in words)]
    texts += [f" {w}" for w in words]  # byte-level BPE sees words after a space most often
    texts += [f"Step {k}:" for k in range(1, 11)]
    texts += [formats.answer_sentence(w) for w in words[:60]]
    texts += [_PUNCTUATION, "0123456789", formats.with_image_token(formats.COD_PROMPT)]
    texts += [f"{IM_START}system\n{formats.SYSTEM_PROMPT}{IM_END}\n", f"{IM_START}user\n", f"{IM_START}assistant\n"]
    texts += [t for t in extra_texts if t]
    return texts


def build_tiny_tokenizer(extra_texts: Iterable[str] = (), vocab_size: int = 1024):
    """Train a byte-level BPE tokenizer offline; returns a `transformers.PreTrainedTokenizerFast`.

    Special tokens: `<|endoftext|>` (pad), `<|im_start|>`, `<|im_end|>` (eos), `<image>`
    (one token). The chat template is `CHAT_TEMPLATE`. The vocabulary may end up smaller than
    `vocab_size` when the corpus has fewer distinct merges; use `len(tokenizer)`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ValueError(f"vocab_size must be >= 300 (256 bytes + specials + merges), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(extra_texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[IM_START, IMAGE_TOKEN],
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast

"""What `sicog data overlap` compares: image fingerprints and question n-grams.

Images (decoded, RGB):
- exact: SHA-256 of the pixels (size + RGB bytes), so the same picture saved as PNG or as a
  lossless re-encode counts as a copy whatever its file bytes;
- near: the 64-bit perceptual hash (`imagehash.phash`: 32×32 grey, DCT, the 8×8 low frequencies
  against their median) and a 4×4 colour thumbnail. Two images are near duplicates when their
  thumbnails differ by at most `THUMB_MAX` (12) grey levels on average (the phash sees grey only:
  two unrelated pictures with the same light/dark layout can share it; resized and re-encoded
  copies keep their colours within ~2 levels) and their hashes differ in at most
  `threshold` bits (default 6 of 64). Measured on the planted set (docs/evaluation.md):
  resized (0.5-2×) and JPEG re-encoded (quality 60-90) copies differ by 0-4 bits; unrelated
  synthetic images (smooth gradients and shapes, more alike than photos) by at least 10 from
  their nearest of 200 benchmark images, typically 16-22; unrelated photos differ by ~32. An image whose 32×32 grey
  version is nearly uniform (standard deviation < 2 grey levels) has no meaningful phash: it is
  matched exactly only.

Questions: lower-cased, punctuation removed, split into words, the `<image>` placeholder and a
short list of function words dropped (the content words); two rules flag a benchmark question against a training
record's human turns:
- ngram: at least `question_threshold` (default 0.8) of the question's content-word n-grams
  (default n=3) occur in the record (containment, not Jaccard: a prompt that embeds the whole
  question plus more scores 1). A question with fewer than n content words is one n-gram: all
  its words in order;
- words: the question has at least 5 distinct content words and the record has every one of
  them (the same question with its clauses reordered); score 1.
Rewordings that change content words (synonyms) are not found by either: n-gram containment
measures shared wording, not meaning.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image

DEFAULT_THRESHOLD = 6
FLAT_STD = 2.0
THUMB_MAX = 12.0
THUMB_SIZE = 4
STOPWORDS = frozenset(
    "a an the of in on at to is are was were be been this that these those it its and or for with by from as "
    "what which who whom whose how does do did can could would should will image picture photo shown".split())
_NON_WORD = re.compile(r"[^\w\s]+")


def image_fingerprint(img: Image.Image) -> tuple[str, int | None, bytes]:
    """(SHA-256 of the pixels, the 64-bit phash or None for a flat image, the 4×4 RGB thumbnail)."""
    import imagehash

    rgb = img.convert("RGB")
    digest = hashlib.sha256(f"{rgb.size[0]}x{rgb.size[1]}".encode() + rgb.tobytes()).hexdigest()
    grey = np.asarray(rgb.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float32)
    thumb = rgb.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX).tobytes()
    if float(grey.std()) < FLAT_STD:
        return digest, None, thumb
    bits = imagehash.phash(rgb, hash_size=8).hash.flatten()
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return digest, value, thumb


def fingerprint_bytes(data: bytes) -> tuple[str, int | None, bytes]:
    import io

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return image_fingerprint(img)


def fingerprint_file(path: str) -> tuple[str, int | None, bytes] | None:
    """The fingerprint of an image file, None when it cannot be read (counted by the caller)."""
    try:
        with Image.open(path) as img:
            img.load()
            return image_fingerprint(img)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (numpy >= 2 has it built in)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _BYTE_BITS[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1)


class NearIndex:
    """The benchmark's phashes and thumbnails; `near_many([(phash, thumb)])` → per query
    [(position, bit distance)] of the near duplicates (see the module docstring)."""

    def __init__(self, hashes: list[int], thumbs: list[bytes], threshold: int, thumb_max: float = THUMB_MAX):
        self.hashes = np.array(hashes, dtype=np.uint64)
        self.thumbs = np.frombuffer(b"".join(thumbs), dtype=np.uint8).reshape(len(thumbs), -1).astype(np.int16) \
            if thumbs else np.zeros((0, 3 * THUMB_SIZE * THUMB_SIZE), dtype=np.int16)
        self.threshold, self.thumb_max = threshold, thumb_max

    def near_many(self, queries: list[tuple[int, bytes]]) -> list[list[tuple[int, int]]]:
        if not len(self.hashes) or not queries:
            return [[] for _ in queries]
        q = np.array([h for h, _ in queries], dtype=np.uint64)[:, None]
        dist = popcount(np.bitwise_xor(q, self.hashes[None, :]))
        out = []
        for (_, thumb), row in zip(queries, dist):
            hit = np.nonzero(row <= self.threshold)[0]
            if len(hit):
                colour = np.abs(self.thumbs[hit] - np.frombuffer(thumb, dtype=np.uint8).astype(np.int16)).mean(axis=1)
                hit = hit[colour <= self.thumb_max]
            out.append([(int(i), int(row[i])) for i in hit])
        return out


def content_words(text: str) -> list[str]:
    text = text.replace("<image>", " ").lower()
    return [w for w in _NON_WORD.sub(" ", text).split() if w not in STOPWORDS]


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = content_words(text)
    if not words:
        return set()
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


MIN_WORDS = 5


class QuestionIndex:
    """Benchmark questions by n-gram and by word; `matches(text)` → [(position, score, rule)]."""

    def __init__(self, n: int, threshold: float):
        self.n, self.threshold = n, threshold
        self.sizes: list[int] = []
        self.word_sizes: list[int] = []
        self.by_gram: dict[tuple[str, ...], list[int]] = {}
        self.by_word: dict[str, list[int]] = {}

    def add(self, question: str) -> int:
        grams = ngrams(question, self.n)
        pos = len(self.sizes)
        self.sizes.append(len(grams))
        for g in grams:
            self.by_gram.setdefault(g, []).append(pos)
        words = set(content_words(question))
        self.word_sizes.append(len(words))
        if len(words) >= MIN_WORDS:
            for w in words:
                self.by_word.setdefault(w, []).append(pos)
        return pos

    def matches(self, text: str) -> list[tuple[int, float, str]]:
        found = {pos: (score, "ngram") for pos, score in self._ngram_matches(text)}
        counts: dict[int, int] = {}
        for w in set(content_words(text)):
            for pos in self.by_word.get(w, ()):
                counts[pos] = counts.get(pos, 0) + 1
        for pos, c in counts.items():
            if c == self.word_sizes[pos] and pos not in found:
                found[pos] = (1.0, "words")
        return [(pos, score, rule) for pos, (score, rule) in found.items()]

    def _ngram_matches(self, text: str) -> list[tuple[int, float]]:
        grams = ngrams(text, self.n)
        # a short training text is its own gram too: it may be a short benchmark question verbatim
        words = tuple(content_words(text))
        if 0 < len(words) < self.n:
            grams.add(words)
        counts: dict[int, int] = {}
        for g in grams:
            for pos in self.by_gram.get(g, ()):
                counts[pos] = counts.get(pos, 0) + 1
        out = []
        for pos, c in counts.items():
            score = c / self.sizes[pos]
            if score >= self.threshold:
                out.append((pos, score))
        return out

"""Prompt text -> weighted CLIP token chunks, with ComfyUI's syntax and chunking.

Syntax (as ComfyUI reads it):
- `(text)` multiplies the weight by 1.1, nested groups multiply again; `(text:1.3)` sets it to 1.3.
- `\\(` and `\\)` are literal parentheses.
- `[text]` is literal in ComfyUI (A1111 reads it as weight / 1.1); `square_brackets=True` opts into
  the A1111 reading.
- `embedding:name` inserts a textual-inversion embedding (a file of the embeddings folder).

Chunking: a chunk is start + 75 tokens + end, padded to 77. A run of text weighted as one piece
moves whole to the next chunk unless it is 8 tokens or longer, in which case it is split.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("loom.prompt")

EMBEDDING_PREFIX = "embedding:"
MAX_LENGTH = 77
SPLIT_LONGER_THAN = 8         # token runs this long may be split across chunks
_ESC_OPEN, _ESC_CLOSE = "\0\2", "\0\1"


def _escape(text: str) -> str:
    return text.replace("\\)", _ESC_CLOSE).replace("\\(", _ESC_OPEN)


def _unescape(text: str) -> str:
    return text.replace(_ESC_CLOSE, ")").replace(_ESC_OPEN, "(")


def _top_level_groups(text: str, open_: str, close: str) -> list[tuple[str, bool]]:
    """Split into (piece, is_group) at depth-0 `open_ ... close` pairs; unmatched brackets stay text."""
    pieces: list[tuple[str, bool]] = []
    current, depth, start = "", 0, None
    for i, ch in enumerate(text):
        if ch == open_:
            if depth == 0:
                if current:
                    pieces.append((current, False))
                current, start = "", i
            depth += 1
        elif ch == close and depth > 0:
            depth -= 1
            if depth == 0:
                pieces.append((text[start:i + 1], True))
                start = None
                continue
        if start is None:
            current += ch
    if start is not None:        # an unclosed group: its text is literal
        current += text[start:]
    if current:
        pieces.append((current, False))
    return pieces


def parse_weights(text: str, weight: float = 1.0, square_brackets: bool = False) -> list[tuple[str, float]]:
    """`a (b:1.2) ((c))` -> [("a ", 1.0), ("b", 1.2), ("c", 1.21)] (escapes already applied)."""
    out: list[tuple[str, float]] = []
    for piece, is_group in _top_level_groups(text, "(", ")"):
        if not is_group:
            if square_brackets:
                for sub, sub_group in _top_level_groups(piece, "[", "]"):
                    out += parse_weights(sub[1:-1], weight / 1.1, True) if sub_group else [(sub, weight)]
            else:
                out.append((piece, weight))
            continue
        inner, group_weight = piece[1:-1], weight * 1.1
        colon = inner.rfind(":")
        if colon > 0:
            try:
                group_weight = float(inner[colon + 1:])
                inner = inner[:colon]
            except ValueError:
                pass
        out += parse_weights(inner, group_weight, square_brackets)
    return out


Token = Any   # an int token id, or a 1-D tensor (a textual-inversion vector)


@dataclass
class PromptTokenizer:
    """One text encoder's view of a prompt: a CLIP tokenizer plus the encoder's padding rules."""

    tokenizer: Any                       # transformers CLIPTokenizer
    clip_name: str = "clip_l"            # which vectors to take from an SDXL embedding file
    embedding_size: int = 768            # width of this encoder's token embeddings
    max_length: int = MAX_LENGTH

    def __post_init__(self) -> None:
        ids = self.tokenizer("")["input_ids"]
        self.start_token, self.end_token = ids[0], ids[1]
        self.pad_token = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.end_token

    def empty_chunk(self, length: int | None = None) -> list[tuple[Token, float]]:
        length = length or self.max_length
        ids = [self.start_token, self.end_token] + [self.pad_token] * (length - 2)
        return [(t, 1.0) for t in ids]

    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, verbose=False)["input_ids"][1:-1]

    def _pieces(self, segment: str, weight: float,
                find_embedding: Callable[[str], Any] | None) -> list[list[tuple[Token, float]]]:
        """One weighted segment -> groups of tokens; `embedding:` words become vector groups."""
        parts = re.split(rf"[ \n]{EMBEDDING_PREFIX}", segment)
        parts = parts[:1] + [EMBEDDING_PREFIX + p for p in parts[1:]]
        groups = []
        for part in parts:
            if not part:
                continue
            if part.startswith(EMBEDDING_PREFIX) and find_embedding is not None:
                words = part[len(EMBEDDING_PREFIX):].strip("\n").split(maxsplit=1)
                name, rest = (words[0], words[1] if len(words) > 1 else "") if words else ("", "")
                vectors = find_embedding(name)
                if vectors is None and name.strip(",") != name:
                    stripped = name.strip(",")
                    vectors = find_embedding(stripped)
                    rest = f"{name[len(stripped):]} {rest}".strip() if vectors is not None else rest
                if vectors is None:
                    log.warning("embedding:%s does not exist, ignoring", name)
                else:
                    vectors = vectors.reshape(-1, vectors.shape[-1])
                    groups.append([(vectors[i], weight) for i in range(vectors.shape[0])])
                part = rest
                if not part:
                    continue
            groups.append([(t, weight) for t in self._text_ids(part)])
        return groups

    def tokenize(self, text: str, find_embedding: Callable[[str], Any] | None = None,
                 square_brackets: bool = False) -> list[list[tuple[Token, float]]]:
        """Chunks of exactly `max_length` (token, weight) pairs."""
        groups: list[list[tuple[Token, float]]] = []
        for segment, weight in parse_weights(_escape(text), 1.0, square_brackets):
            groups += self._pieces(_unescape(segment), weight, find_embedding)
        room = self.max_length - 1            # the end token takes the last place
        chunks: list[list[tuple[Token, float]]] = []
        chunk: list[tuple[Token, float]] = [(self.start_token, 1.0)]
        for group in groups:
            splittable = len(group) >= SPLIT_LONGER_THAN
            while group:
                if len(chunk) + len(group) <= room:
                    chunk += group
                    break
                if splittable:
                    take = room - len(chunk)
                    chunk += group[:take]
                    group = group[take:]
                chunks.append(self._close(chunk))
                chunk = [(self.start_token, 1.0)]
        chunks.append(self._close(chunk))
        return chunks

    def _close(self, chunk: list[tuple[Token, float]]) -> list[tuple[Token, float]]:
        chunk = chunk + [(self.end_token, 1.0)]
        return chunk + [(self.pad_token, 1.0)] * (self.max_length - len(chunk))

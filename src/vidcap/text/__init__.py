"""The joint vocabulary: text word pieces, one token per visual word, and the special tokens."""

from vidcap.text.vocabulary import (
    JOIN_TOKEN,
    SPECIALS,
    VOCABULARY_FILE,
    JointVocabulary,
    extend_pretrained,
    time_token,
    train_vocabulary,
    visual_token,
)

__all__ = [
    "JOIN_TOKEN",
    "SPECIALS",
    "VOCABULARY_FILE",
    "JointVocabulary",
    "extend_pretrained",
    "time_token",
    "train_vocabulary",
    "visual_token",
]

"""The models vidcap trains, built from transformers classes (so checkpoints load in plain
transformers): VideoBERT (a BERT over text and visual words) and BART."""

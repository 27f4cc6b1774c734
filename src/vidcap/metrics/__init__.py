"""Scores of generated text against references: coco-caption metrics (BLEU, METEOR, ROUGE-L,
CIDEr) with a reference-agreement ceiling, and exact match for answers."""

"""Evaluation of generated captions: coco-caption metrics and fact accuracy."""

"""From a raw video to text with a trained bundle: the in-memory pipeline (decode → clips →
features → visual words), the captioner (captions, dense segments, answers, summaries) and
zero-shot classification with a VideoBERT pretrain."""

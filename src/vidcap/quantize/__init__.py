"""Hierarchical k-means: clip features → visual words (:mod:`~vidcap.quantize.kmeans`, the codebook
file that records the tree), its choices (:mod:`~vidcap.quantize.settings`, without torch, for the
command line) and the picture of the words (:mod:`~vidcap.quantize.figure`)."""

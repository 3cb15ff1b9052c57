"""Figure 18: BOS at position 0 in training or not, evaluated with and without it (BFT Table 2).

Rows: Bigram-Backcopy (BB) with BOS at position 0 or without BOS, and packed documents with
BOS at position 0 only, nowhere, or before every document. Every trained model is evaluated
on its task with BOS at position 0 and without any BOS. Panels: (a) the final sink metric
Sink_0.3 (THEORY.md A8), (b) the evaluation loss; mean and range over seeds.

What the paper reports: BFT (Table 2) pretrain with and without BOS fixed at position 0 and
find that a model that always saw BOS at position 0 loses most of its sink when BOS is
removed at inference, while a model trained without it still sinks on the first token.
"""

from __future__ import annotations

from overmix.figures._train import draw_bos, figure_parts

CONFIG, QUICK, SEED, compute, draw = figure_parts("train_bos", draw_bos)

__all__ = ["CONFIG", "QUICK", "SEED", "compute", "draw"]

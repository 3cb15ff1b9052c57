"""Figure 15: attention sinks emerge while a small language model learns Bigram-Backcopy.

A 2-layer, 2-head model (MODEL.md "A small language model": learned position table, rms
pre-norm, GELU MLP, untied unembedding, Adam) is trained on Guo et al.'s Bigram-Backcopy
task (a bigram chain, except that the token after a trigger copies the token before the
trigger; BOS at position 0). Panels: (a) the sink score alpha of every head over training
(GSM's score, THEORY.md A8; first seed), (b) the sink metric Sink_0.3 and (c) the
evaluation loss beside the loss of the true process, as the mean and range over seeds,
(d) the active/dormant split of each trained model: the head whose previous-token weight
rises most on trigger queries ("active head") against the mean of the other heads,
attention on BOS and on the previous token from trigger and from other queries.

What the papers report: Gu et al. 2024 ("When attention sink emerges in language models",
GSM) find that sinks appear during pretraining once the model has been trained enough;
Guo et al. 2024 ("Active-dormant attention heads", arXiv 2410.13835) find on
Bigram-Backcopy that one head attends to the previous token on triggers and parks its
attention on BOS elsewhere (dormant), with a small value at BOS (value-state drain) and a
large residual norm there (residual-state peak).
"""

from __future__ import annotations

from overmix.figures._train import draw_sinks, figure_parts

CONFIG, QUICK, SEED, compute, draw = figure_parts("train_sinks", draw_sinks)

__all__ = ["CONFIG", "QUICK", "SEED", "compute", "draw"]

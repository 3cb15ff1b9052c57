"""Figure 16: sink metric against the training context length (BFT's pretraining experiment).

Models with RoPE and no position table (the same parameters at every n) are trained on
Bigram-Backcopy at context lengths n = 16 .. 512 with the same number of tokens per step
(batch = tokens / n). Panels: (a) the final sink metric Sink_0.3 (T = min(64, n); THEORY.md
A8), (b) the mean attention on position 0 over all queries beside what uniform causal
attention gives, (H_n - 1) / (n - 1); mean and range over seeds.

What the paper reports: Barbero et al. 2025 ("Why do LLMs attend to the first token?",
BFT) pretrain models at several context lengths with the same number of tokens
per step and find that sinks grow with the training context: almost none at the shortest
contexts, many at the longest.
"""

from __future__ import annotations

from overmix.figures._train import draw_context, figure_parts

CONFIG, QUICK, SEED, compute, draw = figure_parts("train_context", draw_context)

__all__ = ["CONFIG", "QUICK", "SEED", "compute", "draw"]

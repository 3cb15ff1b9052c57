"""Figure 17: sink metric against depth L and heads per layer H (BFT Table 1's direction, A9).

Models of width d = 32 (d_head = d / H) with L = 1, 2, 3 layers and H = 1, 2, 4, 8 heads
are trained on Bigram-Backcopy. Panels: (a) the final sink metric Sink_0.3 (THEORY.md A8),
(b) the mean attention on position 0, against H with one line per L; mean and range over
seeds.

What the papers report: BFT (Table 1) measure more sink heads in larger LLaMA 3.1 models
(46, 73 and 78 % for 8B, 70B and 405B); the budget model A9 says that the least fraction of
sink heads grows with depth and with the number of heads.
"""

from __future__ import annotations

from overmix.figures._train import draw_depth_heads, figure_parts

CONFIG, QUICK, SEED, compute, draw = figure_parts("train_depth_heads", draw_depth_heads)

__all__ = ["CONFIG", "QUICK", "SEED", "compute", "draw"]

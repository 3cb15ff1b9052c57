"""Figure 19: optimiser and built-in sinks: does the model still learn its own sink?

Variants on Bigram-Backcopy: Adam (the baseline), SGD with momentum, a built-in sink logit b
(every query gets +b on token 0), a zero value for token 0 (an attended sink is an exact
no-op), and both. Panels: (a) the final sink metric Sink_0.3 (THEORY.md A8) as trained and,
for the variants with a built-in logit, with the logit removed at evaluation (a metric that
stays up means the model built its own sink; one that drops means it leaned on the built-in
one); (b) the final evaluation loss beside the loss of the true process; mean and range
over seeds.

What the papers report: Guo et al. 2024 ("Active-dormant attention heads", arXiv
2410.13835) list replacing Adam by SGD among the interventions that mitigate sinks on
Bigram-Backcopy; Gu et al. 2024 (GSM) find that the first token acts like a key bias,
storing extra attention that contributes little to the values, which is what the built-in
sink logit and zero sink value provide by construction.
"""

from __future__ import annotations

from overmix.figures._train import draw_interventions, figure_parts

CONFIG, QUICK, SEED, compute, draw = figure_parts("train_interventions", draw_interventions)

__all__ = ["CONFIG", "QUICK", "SEED", "compute", "draw"]

"""The list of paper figures: name, one-line caption (with THEORY.md ids), module.

A figure module ``overmix.figures.<name>`` defines ``CONFIG`` and ``QUICK`` (JSON-able
dicts: the full and the CI-sized run), ``SEED`` (int), ``compute(cfg, seed, runner=None)
-> dict`` of arrays (pure: the same config and seed give the same bits, whichever runner
runs its sweeps) and ``draw(data) -> matplotlib.figure.Figure``. The caption and the
THEORY ids live here, so that ``overmix figures --list`` imports no figure module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class FigureSpec:
    """One registered figure: file name stem, one-line caption, THEORY.md ids shown."""

    name: str
    caption: str
    theory_ids: tuple[str, ...]

    @property
    def module_name(self) -> str:
        return f"overmix.figures.{self.name}"

    def module(self):
        """Import and return the figure module."""
        return importlib.import_module(self.module_name)

    def line(self) -> str:
        """One line for ``overmix figures --list``."""
        return f"{self.name}: {self.caption} [{', '.join(self.theory_ids)}]"


# the order of the paper
FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("fig01_collapse",
               "Representational collapse: last-token distance between v and v with its last token "
               "repeated vs n for NoPE, sinusoidal, RoPE, ALiBi (small/large slopes), a sliding "
               "window, and NoPE in bf16/fp16; the O(1/n) rate", ("B3",)),
    FigureSpec("fig02_softmax_tv",
               "Softmax total variation vs n: one changed logit (falls like 1/n), noise on every "
               "logit (does not fall), and the alternating pair (constant 2 tanh(c/2)), under the "
               "finite B2 bound", ("B2", "B4")),
    FigureSpec("fig03_precision",
               "Low precision makes collapse exact: last-token gap vs n in emulated bf16 / fp16 / "
               "fp32 / fp64 with each format's resolution, and the first n with bitwise-equal "
               "outputs vs width and depth", ("B6", "B3")),
    FigureSpec("fig04_oversquashing",
               "Over-squashing map: log path-sum bound over source token and depth for uniform, "
               "random and sink attention; monotone path counts vs token", ("A1", "A3", "A6")),
    FigureSpec("fig05_tightness",
               "Bound tightness: measured last-token Jacobian norm / path-sum bound vs token "
               "position, frozen and live attention, with an MLP, and the equality case",
               ("A1", "A2")),
    FigureSpec("fig06_spread",
               "Perturbation spread over layer x token after one token is replaced, without and "
               "with a sink (logit b, value scale lambda); top-layer spread vs b over seeds "
               "(BFT Fig. 2 analogue)", ("A5", "A7")),
    FigureSpec("fig07_sink_sensitivity",
               "Content sensitivity of the last token vs sink mass gamma for several depths and "
               "head counts, simulated (points) under the sink-cut bound (lines); aligned and "
               "random value maps", ("A5", "A2", "A6")),
    FigureSpec("fig08_sink_scaling",
               "How much sink a stack needs: the self fraction vs sink mass (closed form over "
               "simulation), the least sink mass gamma*(n, L) vs context length for several depths, "
               "and the sink logit b(t) vs query position", ("A6", "A7")),
    FigureSpec("fig09_budget",
               "Budget model: least fraction of sink heads at the LLaMA 3.1 8B/70B/405B shapes "
               "beside BFT Table 1 (direction only), and vs depth for several head counts with "
               "simulated points", ("A9", "A8", "A6")),
    FigureSpec("fig10_rank_collapse",
               "Rank collapse vs depth for SAN, SAN+MLP, SAN+skip and a full stack (DCL's "
               "measure), and the local exponent mu(Y) ~ eps^(3^L) of pure attention vs eps "
               "with a skip", ("B9",)),
    FigureSpec("fig11_masks",
               "Masks and LayerNorm: distance from consensus vs depth for full, causal and window "
               "masks with and without LN; LN's rank-2 equilibrium angle; cumulative attention "
               "converging to token 0 under the WPB bound", ("B12", "B10", "B11")),
    FigureSpec("fig12_rank_vs_repr",
               "Rank collapse implies representational collapse: last-two-token gap vs mu(V) "
               "over hidden states of random stacks, under the sqrt(2) mu bound (tight at n = 2); "
               "the converse counterexample", ("B7",)),
    FigureSpec("fig13a_rope_decay",
               "RoPE and distance: Gaussian q, k logits do not decay; constant q = k gives the "
               "non-monotone B(r) with its continuum law; RoFormer's relative bound, which p-RoPE "
               "keeps above a floor", ("C2", "C3", "C4", "C1")),
    FigureSpec("fig13b_rope_heads",
               "RoPE heads: strength a diagonal head needs vs length for one frequency and a band "
               "(sufficient bound over simulation); the distance at which the lowest pair flips vs "
               "base; a semantic head's target weight vs distance under RoPE and p-RoPE",
               ("C7", "C8", "C10", "C9")),
    FigureSpec("fig13c_rope_context",
               "RoPE base and context: MEN's similar-vs-random gap (Monte Carlo over theory), the "
               "least feasible base vs context beside MEN's Table 2, the PI / NTK / YaRN frequency "
               "maps, and the number of stable channels vs context", ("C12", "C13", "C11")),
    FigureSpec("fig14_sphere",
               "Clustering on the sphere: pairwise inner products of tokens vs time under GLPR's "
               "scheme against the ODE for several beta; first- and fourth-order convergence of "
               "the Euler and RK4 schemes", ("B13",)),
    # trained small language models (overmix.sims.experiments; MODEL.md "A small language model")
    FigureSpec("fig15_train_sinks",
               "Sinks emerge in a 2-layer model trained on Bigram-Backcopy: every head's sink "
               "score over training, the sink metric and loss above the true process (seed mean "
               "and range), and the "
               "active head's attention on BOS vs the previous token on trigger and other "
               "queries (Guo et al.'s active/dormant head)", ("A8",)),
    FigureSpec("fig16_train_context",
               "Sink metric and attention on position 0 vs training context length at equal "
               "tokens per step (BFT's context-length experiment), beside uniform causal attention; the "
               "metric falls with n, the opposite of BFT, and the weight on position 0 relative to "
               "uniform attention does not grow", ("A8",)),
    FigureSpec("fig17_train_depth_heads",
               "Sink metric and attention on position 0 vs heads per layer for 1-3 layers at "
               "fixed width: one one-layer head never sinks, but no monotone trend in heads or "
               "depth (BFT Table 1 and the budget model A9 not reproduced)", ("A9", "A8")),
    FigureSpec("fig18_train_bos",
               "BOS fixed at position 0 in training or not (Bigram-Backcopy, packed "
               "documents), evaluated with and without BOS (BFT Table 2 analogue): trained with "
               "BOS, the model loses its sink without it; trained without, it forms none",
               ("A8",)),
    FigureSpec("fig19_train_interventions",
               "Adam vs SGD and built-in sinks (sink logit, zero sink value): sink metric as "
               "trained and with the built-in logit removed, and loss above the true process; "
               "the optimiser changes nothing, a cheaper or no-op sink is used by more heads",
               ("A8",)),
)


def names() -> list[str]:
    """Names of every registered figure, in paper order."""
    return [f.name for f in FIGURES]


def resolve(requested=None) -> list[FigureSpec]:
    """The specs for the requested names (all when empty), in the order requested.

    A name may be given in full ("fig06_spread") or by its unique prefix ("fig06").
    Unknown or ambiguous names raise ValueError listing the valid names.

    Examples
    --------
    >>> [s.name for s in resolve(["fig06"])]
    ['fig06_spread']
    """
    if not requested:
        return list(FIGURES)
    by_name = {f.name: f for f in FIGURES}
    out, bad = [], []
    for req in requested:
        if req in by_name:
            hit = [by_name[req]]
        else:
            hit = [f for f in FIGURES if f.name.startswith(req + "_") or f.name.startswith(req)]
        if len(hit) != 1:
            bad.append(req)
        elif hit[0] not in out:
            out.append(hit[0])
    if bad:
        raise ValueError(f"unknown figure name(s) {', '.join(map(repr, bad))}; valid names: "
                         f"{', '.join(names())}")
    return out

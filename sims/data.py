"""Synthetic token streams for the small language models of :mod:`overmix.sims.train`.

Every generator is a pure function of its seed: the same arguments give the same tokens,
bit for bit. Token ids are ``0 .. n_tokens-1`` for ordinary tokens and ``n_tokens`` for BOS
(so ``vocab_size = n_tokens + 1``).

Two tasks:

- **Bigram-Backcopy** (Guo et al. 2024, "Active-Dormant Attention Heads", arXiv 2410.13835):
  a bigram chain, except that the token after a *trigger* copies the token before the
  trigger. A head that copies is needed only on triggers; elsewhere the best attention head
  does nothing, and Guo et al. find that it parks its attention on BOS (a sink).
- **Packed documents**: short documents, each a sample of one of a few random Markov chains,
  packed back to back into one context, with BOS at position 0 only, before every document,
  or nowhere (the setting of BFT's BOS experiment, arXiv 2504.02732, Table 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOS_MODES = ("first", "every", "none")


# ------------------------------------------------------------------------------------------
# validation helpers
# ------------------------------------------------------------------------------------------
def _int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {lo}; got {value!r} ({type(value).__name__})")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be an int {allowed}; got {value!r}")
    return int(value)


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive real number; got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return v


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    return np.random.default_rng(int(seed))


def _stationary(P: np.ndarray) -> np.ndarray:
    """Stationary distribution pi = pi P of an irreducible row-stochastic P (solved exactly)."""
    V = P.shape[0]
    # (P^T - I) pi = 0 with sum(pi) = 1: replace one equation by the normalisation
    M = P.T - np.eye(V)
    M[-1] = 1.0
    rhs = np.zeros(V)
    rhs[-1] = 1.0
    pi = np.linalg.solve(M, rhs)
    pi = np.clip(pi, 0.0, None)  # solve leaves -1e-17-sized residues on tiny entries
    return pi / pi.sum()


def random_transition_matrix(n_tokens: int, *, concentration: float = 0.3, seed: int = 0) -> np.ndarray:
    """A random bigram chain: rows i.i.d. Dirichlet(concentration * 1) over ``n_tokens`` tokens.

    Small ``concentration`` gives peaked rows (few likely successors), like character bigrams.
    Every entry is strictly positive almost surely, so the chain is irreducible and aperiodic.

    Parameters
    ----------
    n_tokens : int >= 2
    concentration : float > 0
    seed : int >= 0

    Returns
    -------
    (n_tokens, n_tokens) float64, rows sum to 1

    Examples
    --------
    >>> P = random_transition_matrix(5, seed=1)
    >>> P.shape, bool(np.allclose(P.sum(1), 1))
    ((5, 5), True)
    """
    n_tokens = _int("n_tokens", n_tokens, 2)
    concentration = _positive("concentration", concentration)
    return _dirichlet_chain(_rng(seed), n_tokens, concentration)


def _dirichlet_chain(rng, n_tokens, concentration):
    P = rng.dirichlet(np.full(n_tokens, concentration), size=n_tokens)
    # Dirichlet draws with tiny concentration can underflow to exact zeros; keep P positive
    P = np.maximum(P, 1e-12)
    return P / P.sum(axis=1, keepdims=True)


def _sample_rows(cdf: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling: for each k, the first j with cdf[rows[k], j] > u[k]."""
    c = cdf[rows]
    out = (c <= u[:, None]).sum(axis=1)
    return np.minimum(out, cdf.shape[1] - 1)  # u within rounding of 1


class _OrdinaryTokensAndBOS:
    """Vocabulary of a task: the ordinary tokens 0..n_tokens-1, then BOS (id n_tokens).
    A subclass defines ``n_tokens``."""

    @property
    def vocab_size(self) -> int:
        return self.n_tokens + 1

    @property
    def bos(self) -> int:
        return self.n_tokens


# ------------------------------------------------------------------------------------------
# Bigram-Backcopy
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BigramBackcopy(_OrdinaryTokensAndBOS):
    """A Bigram-Backcopy task (Guo et al. 2024, arXiv 2410.13835, Section 2).

    Attributes
    ----------
    transition : (V0, V0)
        Bigram chain over the ordinary tokens 0..V0-1 (row x: law of the token after x).
    triggers : (k,) int
        Trigger tokens: the k most frequent tokens under the chain's stationary law (Guo et
        al. take the most frequent characters of their corpus).
    first : (V0,)
        Law of the first ordinary token: the stationary law with triggers removed and
        renormalised, so a trigger always has an ordinary token before it.
    """

    transition: np.ndarray
    triggers: np.ndarray
    first: np.ndarray

    @property
    def n_tokens(self) -> int:
        return self.transition.shape[0]

    @property
    def is_trigger(self) -> np.ndarray:
        """(vocab_size,) bool: True for trigger ids (BOS is not a trigger)."""
        m = np.zeros(self.vocab_size, dtype=bool)
        m[self.triggers] = True
        return m


def bigram_backcopy_task(n_tokens: int = 32, n_triggers: int = 3, *, concentration: float = 0.3,
                         seed: int = 0) -> BigramBackcopy:
    r"""Build a Bigram-Backcopy task: a random bigram chain and its trigger tokens.

    The process (Guo et al. 2024, "Active-Dormant Attention Heads: Mechanistically
    Demystifying Extreme-Token Phenomena in LLMs", arXiv 2410.13835, Section 2; the details
    below follow the authors' data generator, ``BBM/data.py``, class ``bbm``):

    .. math::

        x_0 = \mathrm{BOS},\quad x_1 \sim \pi_{\setminus T},\quad
        x_{i+1} = \begin{cases} x_{i-1} & x_i \in T \ (\text{backcopy})\\
                                 \sim P(\cdot \mid x_i) & x_i \notin T \ (\text{bigram})\end{cases}

    with T the k most frequent tokens and :math:`\pi_{\setminus T}` the stationary law with
    T removed. Guo et al. use the character bigrams of Tiny Shakespeare (65 characters,
    k = 3 in their main runs, sequences of 256 tokens); overmix draws the chain at random
    (:func:`random_transition_matrix`) so that no data file is needed.

    Parameters
    ----------
    n_tokens : int >= 2
        Ordinary tokens V0 (the vocabulary has V0 + 1 ids with BOS).
    n_triggers : int in [1, n_tokens - 1]
    concentration : float > 0
        Dirichlet concentration of the chain's rows.
    seed : int >= 0

    Returns
    -------
    BigramBackcopy

    Examples
    --------
    >>> task = bigram_backcopy_task(8, 2, seed=0)
    >>> task.vocab_size, task.bos, len(task.triggers)
    (9, 8, 2)
    >>> bool(task.first[task.triggers].sum() == 0)
    True
    """
    n_tokens = _int("n_tokens", n_tokens, 2)
    n_triggers = _int("n_triggers", n_triggers, 1, n_tokens - 1)
    P = random_transition_matrix(n_tokens, concentration=concentration, seed=seed)
    pi = _stationary(P)
    triggers = np.sort(np.argsort(-pi, kind="stable")[:n_triggers]).astype(np.int64)
    first = pi.copy()
    first[triggers] = 0.0
    first /= first.sum()
    return BigramBackcopy(transition=P, triggers=triggers, first=first)


def sample_bigram_backcopy(task: BigramBackcopy, n_seqs: int, length: int, *, seed: int,
                           bos: bool = True) -> np.ndarray:
    """Draw sequences of the Bigram-Backcopy process (see :func:`bigram_backcopy_task`).

    Parameters
    ----------
    task : BigramBackcopy
    n_seqs : int >= 1
    length : int >= 2
        Tokens per sequence, BOS included (a model reads ``length - 1`` and predicts the
        next token at each of them).
    seed : int >= 0
    bos : bool
        If False, position 0 holds the first ordinary token (drawn from ``task.first``)
        instead of BOS; the rest of the rule is the same.

    Returns
    -------
    (n_seqs, length) int64

    Examples
    --------
    >>> task = bigram_backcopy_task(8, 2, seed=0)
    >>> x = sample_bigram_backcopy(task, 4, 20, seed=1)
    >>> bool((x[:, 0] == task.bos).all()), bool((x[:, 1:] < task.bos).all())
    (True, True)
    >>> t = task.is_trigger[x[:, 1:-1]]                    # trigger at position i >= 1 ...
    >>> bool((x[:, 2:][t] == x[:, :-2][t]).all())          # ... is followed by x[i-1]
    True
    """
    if not isinstance(task, BigramBackcopy):
        raise TypeError(f"task must be a BigramBackcopy; got {type(task).__name__}")
    n_seqs = _int("n_seqs", n_seqs, 1)
    length = _int("length", length, 2)
    rng = _rng(seed)
    cdf = np.cumsum(task.transition, axis=1)
    first_cdf = np.cumsum(task.first)[None, :]
    trig = task.is_trigger
    U = rng.random((n_seqs, length))
    x = np.empty((n_seqs, length), dtype=np.int64)
    start = 1 if bos else 0
    if bos:
        x[:, 0] = task.bos
    x[:, start] = _sample_rows(first_cdf, np.zeros(n_seqs, dtype=np.int64), U[:, start])
    for i in range(start + 1, length):
        cur = x[:, i - 1]
        nxt = _sample_rows(cdf, cur, U[:, i])
        t = trig[cur]
        # cur is a trigger only from position start+1 on (the first token never is one),
        # so x[:, i-2] is an ordinary token whenever it is read
        nxt[t] = x[t, i - 2]
        x[:, i] = nxt
    return x


def trigger_mask(task: BigramBackcopy, tokens) -> np.ndarray:
    """Boolean mask of trigger tokens in ``tokens`` (same shape): the positions where the next
    token is a backcopy. Ids outside ``[0, vocab_size)`` raise ValueError."""
    if not isinstance(task, BigramBackcopy):
        raise TypeError(f"task must be a BigramBackcopy; got {type(task).__name__}")
    t = np.asarray(tokens)
    if t.dtype.kind not in "iu":
        raise TypeError(f"tokens must be an integer array; got dtype {t.dtype}")
    if t.size and (t.min() < 0 or t.max() >= task.vocab_size):
        raise ValueError(f"tokens must be ids in [0, {task.vocab_size}); got range "
                         f"[{t.min()}, {t.max()}]")
    return task.is_trigger[t]


# ------------------------------------------------------------------------------------------
# packed documents
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PackedDocuments(_OrdinaryTokensAndBOS):
    """Documents from ``n_chains`` random Markov chains, packed into contexts.

    Attributes
    ----------
    chains : (C, V0, V0)
        One bigram chain per document "topic"; each document uses one chain, drawn uniformly.
    starts : (C, V0)
        Law of a document's first token under chain c (its stationary law).
    min_len, max_len : int
        Document lengths (ordinary tokens, BOS not counted) are uniform on [min_len, max_len].
    """

    chains: np.ndarray
    starts: np.ndarray
    min_len: int
    max_len: int

    @property
    def n_tokens(self) -> int:
        return self.chains.shape[1]


def packed_documents_task(n_tokens: int = 32, n_chains: int = 4, *, min_len: int = 8,
                          max_len: int = 32, concentration: float = 0.3,
                          seed: int = 0) -> PackedDocuments:
    """Build a packed-documents task: ``n_chains`` random chains and a document length range.

    Because each document follows one of several chains, the tokens of the current document
    tell which chain is running (useful context), while tokens of earlier documents mislead:
    document boundaries matter, as in packed pretraining data.

    Parameters
    ----------
    n_tokens : int >= 2
    n_chains : int >= 1
    min_len, max_len : int, 1 <= min_len <= max_len
    concentration : float > 0
        Dirichlet concentration of each chain's rows (:func:`random_transition_matrix`).
    seed : int >= 0

    Examples
    --------
    >>> task = packed_documents_task(6, 2, min_len=3, max_len=5, seed=0)
    >>> task.chains.shape, task.vocab_size
    ((2, 6, 6), 7)
    """
    n_tokens = _int("n_tokens", n_tokens, 2)
    n_chains = _int("n_chains", n_chains, 1)
    min_len = _int("min_len", min_len, 1)
    max_len = _int("max_len", max_len, min_len)
    concentration = _positive("concentration", concentration)
    rng = _rng(seed)
    chains = np.stack([_dirichlet_chain(rng, n_tokens, concentration) for _ in range(n_chains)])
    starts = np.stack([_stationary(P) for P in chains])
    return PackedDocuments(chains=chains, starts=starts, min_len=min_len, max_len=max_len)


def _document_layout(task, n_seqs, length, bos, rng):
    """Per position: chain id, and kind 0 = BOS, 1 = first token of a document, 2 = next."""
    chain = np.zeros((n_seqs, length), dtype=np.int64)
    kind = np.full((n_seqs, length), 2, dtype=np.int64)
    for s in range(n_seqs):
        p = 0
        if bos == "first":
            kind[s, 0] = 0
            p = 1
        while p < length:
            c = int(rng.integers(task.chains.shape[0]))
            m = int(rng.integers(task.min_len, task.max_len + 1))
            if bos == "every":
                kind[s, p] = 0
                p += 1
                if p >= length:
                    break
            kind[s, p] = 1
            chain[s, p:p + m] = c
            p += m
    return chain, kind


def sample_packed_documents(task: PackedDocuments, n_seqs: int, length: int, *, seed: int,
                            bos: str = "first") -> tuple[np.ndarray, np.ndarray]:
    """Draw contexts of packed documents.

    Parameters
    ----------
    task : PackedDocuments
    n_seqs : int >= 1
    length : int >= 2
    seed : int >= 0
    bos : {"first", "every", "none"}
        BOS at position 0 only; before every document (so also at position 0); or nowhere.

    Returns
    -------
    tokens : (n_seqs, length) int64
    doc_start : (n_seqs, length) bool
        True at the first ordinary token of every document.

    Examples
    --------
    >>> task = packed_documents_task(6, 2, min_len=3, max_len=5, seed=0)
    >>> x, start = sample_packed_documents(task, 2, 16, seed=0, bos="every")
    >>> bool((x[:, 0] == task.bos).all()), bool((x[:, 1:][start[:, 1:]] < task.bos).all())
    (True, True)
    """
    if not isinstance(task, PackedDocuments):
        raise TypeError(f"task must be a PackedDocuments; got {type(task).__name__}")
    n_seqs = _int("n_seqs", n_seqs, 1)
    length = _int("length", length, 2)
    if bos not in BOS_MODES:
        raise ValueError(f"bos must be one of {BOS_MODES}; got {bos!r}")
    rng = _rng(seed)
    chain, kind = _document_layout(task, n_seqs, length, bos, rng)
    U = rng.random((n_seqs, length))
    C, V0 = task.chains.shape[:2]
    cdf = np.cumsum(task.chains, axis=2).reshape(C * V0, V0)
    start_cdf = np.cumsum(task.starts, axis=1)
    x = np.empty((n_seqs, length), dtype=np.int64)
    for i in range(length):
        k = kind[:, i]
        tok = np.full(n_seqs, task.bos, dtype=np.int64)
        first = k == 1
        if first.any():
            tok[first] = _sample_rows(start_cdf, chain[first, i], U[first, i])
        cont = k == 2
        if cont.any():
            rows = chain[cont, i] * V0 + x[cont, i - 1]
            tok[cont] = _sample_rows(cdf, rows, U[cont, i])
        x[:, i] = tok
    return x, kind == 1

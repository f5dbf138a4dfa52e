"""Syntax-constrained SMILES decoding: a batched state machine that masks, at every step,
the tokens after which no well-formed SMILES string could be finished.

The idea is that of syntax-directed decoding (Dai et al. 2018, "Syntax-directed variational
autoencoder for structured data"), applied to a plain SMILES token decoder: the decoder keeps
its own distribution and only the tokens that break the grammar are ruled out. What is tracked
per row:

- what the last token was (start, atom, bond, ``(``, ``)``, ring label, ``.``),
- the branch depth, so that ``)`` never comes without its ``(`` and <eos> never inside a branch,
- which ring labels are open and at which atom each was opened, so that every ring bond is
  closed before <eos>, never on the atom that opened it nor on the atom bonded to that one
  along the chain (both would be bonds RDKit refuses),
- a stack of branch roots, to know which atom a new bond attaches to,
- the length of a concrete way to finish (atoms to close the open rings on, the ring labels,
  one ``)`` per branch, <eos>), so that every string can still be finished within ``max_len``.

Rules that keep the string parseable:

- an atom may come anywhere: at the start, after an atom, a bond, ``(``, ``)``, a ring label
  or ``.``;
- a bond follows an atom, a ring label, ``(`` or ``)``, never another bond, and is followed by
  an atom or (after an atom) a ring label;
- ``(`` follows an atom, a ring label or ``)``; ``(`` is never followed by ``)``;
- ring labels follow an atom, a ring label, or a bond written right after one;
- ``.`` and <eos> need depth 0 and no open ring; <eos> never follows a bond, ``(`` or ``.``.

Valence and aromaticity are not tracked: those are chemistry, not syntax, and RDKit still
rejects a string that breaks them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import torch
from torch import Tensor

from ..tokenizers import EOS_ID, SmilesTokenizer

MAX_DEPTH = 16        # deepest branch nesting allowed; MOSES molecules stay under 6

# What the previous token was (one code per row of the state).
START, ATOM, BOND, OPEN, CLOSE, RING, DOT, END, OTHER = range(9)

BOND_SYMBOLS = frozenset("-=#$:/\\")
ORGANIC_ATOMS = frozenset({"B", "C", "N", "O", "P", "S", "F", "Cl", "Br", "I",
                           "b", "c", "n", "o", "p", "s", "*"})


def token_class(token: str) -> int:
    """The grammatical class of one SMILES regex token (OTHER for specials and unknowns)."""
    if token in ORGANIC_ATOMS or (len(token) > 2 and token[0] == "[" and token[-1] == "]"):
        return ATOM
    if token in BOND_SYMBOLS:
        return BOND
    if token == "(":
        return OPEN
    if token == ")":
        return CLOSE
    if token == ".":
        return DOT
    if ring_label(token) is not None:
        return RING
    return OTHER


def ring_label(token: str) -> int | None:
    """The ring-closure number of a token (``1`` .. ``9``, ``%10`` .. ``%99``), else None."""
    if len(token) == 1 and token.isdigit():
        return int(token)
    if len(token) == 3 and token[0] == "%" and token[1:].isdigit():
        return int(token[1:])
    return None


@dataclass(frozen=True)
class SyntaxState:
    """Where each of B partial strings stands.

    prev: (B,) class of the last token; before_bond: (B,) class of the token before the last
    bond; depth: (B,) open branches; atom: (B,) index of the last atom written (-1 before any);
    attach: (B,) the atom the next bond attaches to; parent: (B,) the atom the last atom was
    bonded to along the chain (-1 for none); roots: (B, MAX_DEPTH) the branch roots, a stack
    of depth ``depth``; ring_open: (B, L) which ring labels are open; ring_atom: (B, L) the
    atom that opened each; partners: (B, L) the atoms that ring bonds closed on the last atom
    lead to (-1 for none), so that no second ring bond joins the same two atoms.
    """

    prev: Tensor
    before_bond: Tensor
    depth: Tensor
    atom: Tensor
    attach: Tensor
    parent: Tensor
    roots: Tensor
    ring_open: Tensor
    ring_atom: Tensor
    partners: Tensor

    def select(self, rows: Tensor) -> "SyntaxState":
        """The state of the rows picked by ``rows`` (a boolean mask or an index tensor)."""
        return SyntaxState(*(getattr(self, f.name)[rows] for f in fields(self)))


class SmilesSyntax:
    """The SMILES grammar over one tokenizer's vocabulary, for :func:`seqvae.decoding.decode`.

    Args:
        tokens: the vocabulary, index = token id (``VocabTokenizer.tokens``).
        eos_id: the id of <eos>.
    """

    def __init__(self, tokens: Sequence[str], eos_id: int = EOS_ID):
        classes = [token_class(t) for t in tokens]
        labels = [ring_label(t) if c == RING else None for t, c in zip(tokens, classes)]
        self.vocab_size, self.eos_id = len(tokens), eos_id
        self.class_of = torch.tensor(classes, dtype=torch.long)
        self.class_of[eos_id] = END
        # Ring labels are numbered 0..L-1 in the state, in vocabulary order.
        self.ring_ids = [i for i, lab in enumerate(labels) if lab is not None]
        slot = {tid: k for k, tid in enumerate(self.ring_ids)}
        self.slot_of = torch.tensor([slot.get(i, -1) for i in range(len(tokens))], dtype=torch.long)
        self.ids_of = {c: [i for i, ci in enumerate(self.class_of.tolist()) if ci == c]
                       for c in (ATOM, BOND, OPEN, CLOSE, DOT)}

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "SmilesSyntax | None":
        """The grammar for a SMILES regex tokenizer; None for any other (SELFIES strings are
        valid by construction; characters or pieces do not map onto SMILES tokens)."""
        if type(tokenizer) is not SmilesTokenizer:
            return None
        return cls(tokenizer.tokens, tokenizer.eos_id)

    def start(self, batch: int, device: torch.device | str = "cpu") -> SyntaxState:
        """The state of ``batch`` empty strings."""
        L = len(self.ring_ids)
        long = dict(dtype=torch.long, device=device)
        return SyntaxState(prev=torch.full((batch,), START, **long),
                           before_bond=torch.full((batch,), START, **long),
                           depth=torch.zeros(batch, **long), atom=torch.full((batch,), -1, **long),
                           attach=torch.full((batch,), -1, **long),
                           parent=torch.full((batch,), -1, **long),
                           roots=torch.full((batch, MAX_DEPTH), -1, **long),
                           ring_open=torch.zeros(batch, L, dtype=torch.bool, device=device),
                           ring_atom=torch.full((batch, L), -1, **long),
                           partners=torch.full((batch, L), -1, **long))

    def legal(self, state: SyntaxState) -> Tensor:
        """(B, V) bool: the tokens the grammar allows next, whatever the length."""
        s = state
        B, device = s.prev.size(0), s.prev.device
        n_open = s.ring_open.sum(1)
        after_atom = (s.prev == ATOM) | (s.prev == RING)
        after_close = s.prev == CLOSE
        balanced = (s.depth == 0) & (n_open == 0)
        ok = {
            ATOM: s.prev != END,
            BOND: after_atom | (s.prev == OPEN) | after_close,
            OPEN: (after_atom | after_close) & (s.depth < MAX_DEPTH),
            CLOSE: (after_atom | after_close) & (s.depth > 0),
            DOT: (after_atom | after_close) & balanced,
        }
        legal = torch.zeros(B, self.vocab_size, dtype=torch.bool, device=device)
        for c, ids in self.ids_of.items():
            if ids:
                legal[:, ids] = ok[c].unsqueeze(1)
        legal[:, self.eos_id] = (after_atom | after_close) & balanced
        if self.ring_ids:
            label_ok = after_atom | ((s.prev == BOND)
                                     & ((s.before_bond == ATOM) | (s.before_bond == RING)))
            legal[:, self.ring_ids] = label_ok.unsqueeze(1) & (~s.ring_open | self._closable(s))
        return legal

    def _closable(self, s: SyntaxState) -> Tensor:
        """(B, L): open rings that may close on the current atom."""
        return _closable_on(s.ring_open, s.ring_atom, s.atom, s.parent, s.partners)

    def finish_cost(self, state: SyntaxState) -> Tensor:
        """(B,) the length (<eos> included) of one concrete way to finish each string.

        The plan: write an atom if the grammar needs one first; then, while rings are open,
        close on the current atom every ring that may close there (one per opener: two ring
        bonds may not join the same two atoms) and write a new atom if any stay open; then
        one ``)`` per open branch and <eos>. Each step of the plan leaves a state whose plan
        is the rest of it, so a string that could finish before a token can after it.
        """
        s = state
        n = s.prev.size(0)
        count = torch.zeros(n, dtype=torch.long, device=s.prev.device)
        open_, opener = s.ring_open.clone(), s.ring_atom
        fresh_atom = s.atom + 1                     # ids that no opener can hold
        must_write_atom = ((s.prev == START) | (s.prev == BOND) | (s.prev == OPEN)
                           | (s.prev == DOT) | ((s.prev == CLOSE) & open_.any(1)))
        cur = torch.where(must_write_atom, fresh_atom, s.atom)
        parent = torch.where(must_write_atom, torch.where(s.prev == DOT, -1, s.attach), s.parent)
        partners = torch.where(must_write_atom.unsqueeze(1), -1, s.partners)
        count += must_write_atom.long()
        L = open_.size(1)
        earlier = torch.ones(L, L, dtype=torch.bool, device=count.device).tril(-1)  # [k, j]: j < k
        for _ in range(L + 3):
            if not bool(open_.any()):
                break
            closable = _closable_on(open_, opener, cur, parent, partners)
            same = (opener.unsqueeze(2) == opener.unsqueeze(1)) & closable.unsqueeze(1) & earlier
            chosen = closable & ~same.any(2)        # the first closable ring of each opener
            count += chosen.sum(1)
            open_ = open_ & ~chosen
            still = open_.any(1)
            count += still.long()
            parent = torch.where(still, cur, parent)
            fresh_atom = fresh_atom + 1
            cur = torch.where(still, fresh_atom, cur)
            partners = torch.where(still.unsqueeze(1), -1, partners)
        return torch.where(s.prev == END, 0, count + s.depth + 1)

    def allowed(self, state: SyntaxState, remaining: int) -> Tensor:
        """(B, V) bool: the tokens the grammar allows after which each string can still be
        finished within ``remaining`` tokens (this one included)."""
        legal = self.legal(state)
        # Only rows near the length limit can be cut off: far from it, every legal token
        # leaves a string that can be finished, and the costly check is skipped.
        near = (self.finish_bound(state) > remaining - 1).nonzero().squeeze(1)
        if near.numel() == 0:
            return legal
        B, V = near.numel(), self.vocab_size
        tokens = torch.arange(V, device=legal.device).repeat(B)
        after = self.advance(state.select(near.repeat_interleave(V)), tokens)
        legal[near] &= self.finish_cost(after).view(B, V) <= remaining - 1
        return legal

    def finish_bound(self, state: SyntaxState) -> Tensor:
        """(B,) an upper bound on :meth:`finish_cost` after any one more token.

        The plan writes at most one atom first, closes each open ring once, and writes at most
        one atom per ring plus two more (a ring cannot close on its opener or the opener's
        neighbour, nor twice between two atoms); then one ``)`` per branch and <eos>. One
        token opens at most one more ring or branch: 2 (rings + 1) + 3 + (depth + 1) + 1.
        """
        return 2 * state.ring_open.sum(1) + state.depth + 7

    def advance(self, state: SyntaxState, tokens: Tensor) -> SyntaxState:
        """The state after each row appends its token; tokens: (B,) ids."""
        s = state
        cls = self.class_of.to(tokens.device)[tokens]
        is_atom, is_open, is_close = cls == ATOM, cls == OPEN, cls == CLOSE
        atom = s.atom + is_atom.long()
        # A new atom bonds to the attach point (none after '.'); a branch pushes its root and
        # ')' pops it back as the attach point.
        parent = torch.where(is_atom, torch.where(s.prev == DOT, -1, s.attach), s.parent)
        rows = torch.arange(tokens.size(0), device=tokens.device)
        roots = s.roots.clone()
        push = is_open.nonzero().squeeze(1)
        # allowed() advances every token, the illegal ones too, before masking them, so a '('
        # at MAX_DEPTH arrives here: its push lands on the top slot and the row is discarded.
        roots[push, s.depth[push].clamp(max=MAX_DEPTH - 1)] = s.attach[push]
        popped = roots[rows, (s.depth - 1).clamp(min=0)]
        attach = torch.where(is_atom, atom, torch.where(is_close, popped, s.attach))
        depth = s.depth + is_open.long() - is_close.long()
        ring_open, ring_atom, partners = s.ring_open, s.ring_atom, s.partners
        if self.ring_ids:
            slot = self.slot_of.to(tokens.device)[tokens]
            is_ring = (slot >= 0).unsqueeze(1) & (
                torch.arange(len(self.ring_ids), device=tokens.device) == slot.unsqueeze(1))
            closing = is_ring & ring_open
            partners = torch.where(is_atom.unsqueeze(1), -1,
                                   torch.where(closing, ring_atom, partners))
            ring_open = ring_open ^ is_ring
            ring_atom = torch.where(is_ring & ring_open, atom.unsqueeze(1), ring_atom)
        keep = cls == OTHER                         # <pad> after a finished beam: no change
        prev = torch.where(keep, s.prev, cls)
        before_bond = torch.where(cls == BOND, s.prev, s.before_bond)
        return SyntaxState(prev=prev, before_bond=before_bond, depth=depth, atom=atom,
                           attach=attach, parent=parent, roots=roots, ring_open=ring_open,
                           ring_atom=ring_atom, partners=partners)


def _closable_on(ring_open: Tensor, opener: Tensor, atom: Tensor, parent: Tensor,
                 partners: Tensor) -> Tensor:
    """(B, L): the open rings that may close on ``atom`` (B,): not opened by it (a self-bond),
    nor by its ``parent`` (B,), nor by an atom a ring bond already joins it to (``partners``,
    (B, L))."""
    taken = (opener.unsqueeze(2) == partners.unsqueeze(1)).any(2)
    return (ring_open & (opener != atom.unsqueeze(1)) & (opener != parent.unsqueeze(1))
            & ~taken)

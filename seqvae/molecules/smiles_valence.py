"""Valence-constrained SMILES decoding: the grammar of :mod:`.smiles_syntax`, plus a count of
the bonds each atom written so far can still take.

The grammar guarantees a string that parses; it does not stop the decoder from giving a carbon
a fifth bond or closing a ring on an oxygen that already has two. Here every atom carries a
budget of bond-order units and of neighbours, set from its token when it is written and
spent by each bond it takes (to its chain parent, to a branch, to a ring partner). A token
is masked when the bond it makes would overdraw the budget of either end.

Budgets (bond-order units; an implicit bond counts 1, ``=`` 2, ``#`` 3, ``$`` 4):

- organic-subset atoms: the largest valence RDKit allows the element (C 4, N 3, O 2,
  S 6, P 5, halogens 1 or what RDKit lists), implicit hydrogens filling the rest;
- aromatic organic atoms: ``c`` 4 units and 3 neighbours (two ring bonds and one more, which
  may be ``=O`` as in a pyridone), ``n`` 3/3, ``o`` 2/2, ``s`` 4/3, ``p`` 3/3, ``b`` 3/3;
- bracket atoms: the largest valence of the element isoelectronic with the charged atom
  (N+ as C, O- as F), less the hydrogens written inside the bracket (``[nH]`` 2, ``[C@@H]``
  3); aromatic ones at most 3 neighbours.

These are necessary conditions, not sufficient ones: RDKit can still refuse a decode (an
aromatic ring that cannot be kekulised, a ring bond of the wrong order). Where the budgets
leave a row no token at all (a dead end: rings open and every atom that could close them
full), that row falls back to the grammar alone, so a decode always finishes well-formed.
The same idea, atom valences tracked while decoding, is what grammar- and graph-based
molecule decoders build in (Kusner et al. 2017; Dai et al. 2018; Jin et al. 2018).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Sequence

import torch
from rdkit import Chem
from torch import Tensor

from ..tokenizers import EOS_ID, SmilesTokenizer
from .smiles_syntax import ATOM, BOND, CLOSE, DOT, OPEN, RING, START, SmilesSyntax, SyntaxState

BOND_ORDER = {"-": 1, "=": 2, "#": 3, "$": 4, ":": 1, "/": 1, "\\": 1}
AROMATIC_BUDGET = {"c": (4, 3), "n": (3, 3), "o": (2, 2), "s": (4, 3), "p": (3, 3), "b": (3, 3),
                   "se": (4, 3), "te": (4, 3), "as": (3, 3)}
UNLIMITED = 99                     # the budget of ``*`` and of elements RDKit sets no limit on
AROMATIC_MAX_ORDER = 2             # an aromatic atom takes at most ``=`` (the C=O of a pyridone)
FIRST_ATOM_COLUMNS = 64            # atoms tracked before the budget table grows
BRACKET = re.compile(r"^\[(\d*)([A-Z][a-z]?|[a-z]{1,2}|\*)(@*|@[A-Z]{2}\d*)?(?:H(\d*))?"
                     r"([+-]\d*|[+-]{2,})?(?::\d+)?\]$")


@lru_cache(maxsize=None)
def _max_valence(atomic_number: int) -> int:
    if atomic_number <= 0:
        return UNLIMITED
    valences = list(Chem.GetPeriodicTable().GetValenceList(atomic_number))
    return UNLIMITED if -1 in valences else max(valences)


def _atomic_number(symbol: str) -> int:
    return Chem.GetPeriodicTable().GetAtomicNumber(symbol)


def atom_budget(token: str) -> tuple[int, int] | None:
    """(bond-order units, neighbours) an atom token may take, None for a non-atom token or a
    bracket atom this module cannot read (such a token is left unconstrained)."""
    if token == "*":
        return UNLIMITED, UNLIMITED
    if token in AROMATIC_BUDGET:
        return AROMATIC_BUDGET[token]
    if token in ("B", "C", "N", "O", "P", "S", "F", "Cl", "Br", "I"):
        units = _max_valence(_atomic_number(token))
        return units, units
    match = BRACKET.match(token)
    if match is None:
        return None
    _, symbol, _, hydrogens, charge = match.groups()
    if symbol == "*":
        return UNLIMITED, UNLIMITED
    aromatic = symbol[0].islower()
    try:
        z = _atomic_number(symbol.capitalize())
    except RuntimeError:
        return None
    h = 0 if hydrogens is None else int(hydrogens or 1)
    q = 0
    if charge:
        sign = 1 if charge[0] == "+" else -1
        q = sign * (int(charge[1:]) if charge[1:].isdigit() else len(charge))
    # A charged main-group atom bonds like the element with as many electrons (N+ as C).
    units = max(_max_valence(z - q) if 0 < z - q else 0, 0) - h
    if aromatic:
        units = min(units, AROMATIC_BUDGET.get(symbol, (4, 3))[0] + max(q, 0))
    return max(units, 0), min(max(units, 0), 3 if aromatic else UNLIMITED)


@dataclass(frozen=True)
class ValenceState:
    """The grammar's state and what each atom may still take.

    syntax: the :class:`~.smiles_syntax.SyntaxState`; units, neighbours: (B, A) the
    bond-order units and neighbours atom a (by order of writing) may still take; max_order:
    (B, A) the highest order of a bond to atom a (2 for aromatic atoms); pending: (B,) the
    order of the bond symbol just written (0: none); ring_order: (B, L) the order written where
    each open ring was opened (0: none).
    """

    syntax: SyntaxState
    units: Tensor
    neighbours: Tensor
    max_order: Tensor
    pending: Tensor
    ring_order: Tensor

    def select(self, rows: Tensor) -> "ValenceState":
        """The state of the rows picked by ``rows`` (a boolean mask or an index tensor)."""
        return ValenceState(self.syntax.select(rows),
                            *(getattr(self, f.name)[rows] for f in fields(self)[1:]))


class SmilesValence:
    """The SMILES grammar with atom valences, for :func:`seqvae.decoding.decode`.

    Besides each bond fitting the budgets of both its atoms, a token is masked when it would
    leave the string stuck: an atom with nothing left to bond, at branch depth 0, while a ring
    is still open (nothing could follow it but <eos>, which the open ring forbids).

    Args:
        tokens: the vocabulary, index = token id (``VocabTokenizer.tokens``).
        eos_id: the id of <eos>.
    """

    def __init__(self, tokens: Sequence[str], eos_id: int = EOS_ID):
        self.grammar = SmilesSyntax(tokens, eos_id)
        classes = self.grammar.class_of.tolist()
        budgets = [atom_budget(t) if c == ATOM else None for t, c in zip(tokens, classes)]
        self.units_of = torch.tensor([b[0] if b else UNLIMITED for b in budgets])
        self.neighbours_of = torch.tensor([b[1] if b else UNLIMITED for b in budgets])
        aromatic = [c == ATOM and _is_aromatic(t) for t, c in zip(tokens, classes)]
        self.max_order_of = torch.tensor([AROMATIC_MAX_ORDER if a else UNLIMITED
                                          for a in aromatic])
        self.order_of = torch.tensor([BOND_ORDER.get(t, 0) for t in tokens])
        self.atom_ids = torch.tensor(self.grammar.ids_of[ATOM], dtype=torch.long)
        self.bond_ids = torch.tensor(self.grammar.ids_of[BOND], dtype=torch.long)
        self.open_ids = self.grammar.ids_of[OPEN]
        self.close_ids = self.grammar.ids_of[CLOSE]

    @classmethod
    def for_tokenizer(cls, tokenizer) -> "SmilesValence | None":
        """The constraint for a SMILES regex tokenizer; None for any other."""
        if type(tokenizer) is not SmilesTokenizer:
            return None
        return cls(tokenizer.tokens, tokenizer.eos_id)

    def start(self, batch: int, device: torch.device | str = "cpu") -> ValenceState:
        """The state of ``batch`` empty strings."""
        L = len(self.grammar.ring_ids)
        long = dict(dtype=torch.long, device=device)
        return ValenceState(self.grammar.start(batch, device),
                            units=torch.zeros(batch, FIRST_ATOM_COLUMNS, **long),
                            neighbours=torch.zeros(batch, FIRST_ATOM_COLUMNS, **long),
                            max_order=torch.zeros(batch, FIRST_ATOM_COLUMNS, **long),
                            pending=torch.zeros(batch, **long),
                            ring_order=torch.zeros(batch, L, **long))

    def allowed(self, state: ValenceState, remaining: int) -> Tensor:
        """(B, V) bool: what the grammar allows (see :meth:`SmilesSyntax.allowed`) and no
        atom's budget forbids; the grammar alone for a row the budgets leave nothing."""
        grammar = self.grammar.allowed(state.syntax, remaining)
        both = grammar & self.within_budget(state)
        dead_end = ~both.any(1)
        return torch.where(dead_end.unsqueeze(1), grammar, both)

    def within_budget(self, state: ValenceState) -> Tensor:
        """(B, V) bool: the tokens whose bonds no atom's budget forbids and that leave no atom
        stuck (syntax aside)."""
        s, g = state, state.syntax
        B, V, device = g.prev.size(0), len(self.units_of), g.prev.device
        units_of, neighbours_of = self.units_of.to(device), self.neighbours_of.to(device)
        order_of, max_order_of = self.order_of.to(device), self.max_order_of.to(device)
        rows = torch.arange(B, device=device)
        # What the atom a new bond would attach to can still take (unlimited: none).
        has_attach = g.attach >= 0
        at = g.attach.clamp(min=0)
        free_units = torch.where(has_attach, s.units[rows, at], UNLIMITED)
        free_neighbours = torch.where(has_attach, s.neighbours[rows, at], UNLIMITED)
        top_order = torch.where(has_attach, s.max_order[rows, at], UNLIMITED)
        order = torch.where(s.pending > 0, s.pending, 1)
        bonded = has_attach & (g.prev != START) & (g.prev != DOT)
        # A row at depth 0 with a ring open must keep an atom that can still bond: with
        # nothing left to bond, only <eos> could follow, and the open ring forbids it.
        n_open = g.ring_open.sum(1)
        must_go_on = (g.depth == 0) & (n_open > 0)
        ok = torch.ones(B, V, dtype=torch.bool, device=device)
        if len(self.atom_ids):
            ids = self.atom_ids.to(device)
            spent = torch.where(bonded, order, 0).unsqueeze(1)
            fits = ((units_of[ids].unsqueeze(0) >= order.unsqueeze(1))
                    & (max_order_of[ids].unsqueeze(0) >= order.unsqueeze(1))
                    & ((free_units >= order) & (free_neighbours >= 1)
                       & (top_order >= order)).unsqueeze(1))
            stuck = (((units_of[ids].unsqueeze(0) - spent) <= 0)
                     | ((neighbours_of[ids].unsqueeze(0) - bonded.long().unsqueeze(1)) <= 0))
            ok[:, ids] = (fits | ~bonded.unsqueeze(1)) & ~(stuck & must_go_on.unsqueeze(1))
        if len(self.bond_ids):
            ids = self.bond_ids.to(device)
            ok[:, ids] = ((order_of[ids].unsqueeze(0) <= torch.minimum(free_units, top_order)
                           .unsqueeze(1)) & (free_neighbours >= 1).unsqueeze(1))
        if self.open_ids:
            ok[:, self.open_ids] = ((free_units >= 1) & (free_neighbours >= 1)).unsqueeze(1)
        if self.close_ids:
            # ')' brings back the branch's root as the atom to bond to.
            root = g.roots[rows, (g.depth - 1).clamp(min=0)].clamp(min=0)
            root_stuck = (s.units[rows, root] <= 0) | (s.neighbours[rows, root] <= 0)
            ok[:, self.close_ids] = ~(root_stuck & (g.depth == 1) & (n_open > 0)).unsqueeze(1)
        ring_ids = self.grammar.ring_ids
        if ring_ids:
            # A ring label bonds the current atom (the attach point after an atom or a bond).
            closing = g.ring_open
            opened = torch.where(s.ring_order > 0, s.ring_order, 1)
            k = torch.where((s.pending > 0).unsqueeze(1), s.pending.unsqueeze(1),
                            torch.where(closing, opened, 1))
            opener = g.ring_atom.clamp(min=0)
            opener_units = s.units.gather(1, opener)
            opener_top = s.max_order.gather(1, opener)
            here = ((free_units.unsqueeze(1) >= k) & (free_neighbours >= 1).unsqueeze(1)
                    & (top_order.unsqueeze(1) >= k))
            extra = (k - opened).clamp(min=0)
            open_after = n_open.unsqueeze(1) + torch.where(closing, -1, 1)
            stuck = (((free_units.unsqueeze(1) - k) <= 0) | (free_neighbours <= 1).unsqueeze(1))
            # Both ends of a ring bond may name its order, but not two different ones.
            agree = (s.pending == 0).unsqueeze(1) | (s.ring_order == 0) | (
                s.ring_order == s.pending.unsqueeze(1))
            ok[:, ring_ids] = (here & (~closing | ((opener_units >= extra) & (opener_top >= k)
                                                   & agree))
                               & ~(stuck & (g.depth == 0).unsqueeze(1) & (open_after > 0)))
        return ok

    def advance(self, state: ValenceState, tokens: Tensor) -> ValenceState:
        """The state after each row appends its token; tokens: (B,) ids."""
        s, g = state, state.syntax
        device = tokens.device
        B = tokens.size(0)
        rows = torch.arange(B, device=device)
        cls = self.grammar.class_of.to(device)[tokens]
        units, neighbours, max_order = s.units, s.neighbours, s.max_order
        new_atom = g.atom + 1
        if bool((new_atom >= units.size(1)).any()):     # more atoms than columns: grow
            grow = torch.zeros(B, units.size(1), dtype=torch.long, device=device)
            units, neighbours, max_order = (torch.cat([t, grow], 1)
                                            for t in (units, neighbours, max_order))
        units, neighbours, max_order = units.clone(), neighbours.clone(), max_order.clone()
        order = torch.where(s.pending > 0, s.pending, 1)
        is_atom = cls == ATOM
        bonded = is_atom & (g.attach >= 0) & (g.prev != START) & (g.prev != DOT)
        at = g.attach.clamp(min=0)
        spent = torch.where(bonded, order, 0)
        units[rows, at] -= spent
        neighbours[rows, at] -= bonded.long()
        a = torch.where(is_atom, new_atom, 0)
        units[rows, a] = torch.where(is_atom, self.units_of.to(device)[tokens] - spent,
                                     units[rows, a])
        neighbours[rows, a] = torch.where(is_atom, self.neighbours_of.to(device)[tokens]
                                          - bonded.long(), neighbours[rows, a])
        max_order[rows, a] = torch.where(is_atom, self.max_order_of.to(device)[tokens],
                                         max_order[rows, a])
        ring_order = s.ring_order
        if self.grammar.ring_ids:
            slot = self.grammar.slot_of.to(device)[tokens]
            is_ring = slot >= 0
            col = slot.clamp(min=0)
            closing = is_ring & g.ring_open[rows, col]
            opened = torch.where(s.ring_order[rows, col] > 0, s.ring_order[rows, col], 1)
            k = torch.where(s.pending > 0, s.pending, torch.where(closing, opened, 1))
            cur = g.atom.clamp(min=0)
            units[rows, cur] -= torch.where(is_ring, k, 0)
            neighbours[rows, cur] -= is_ring.long()
            opener = g.ring_atom[rows, col].clamp(min=0)
            units[rows, opener] -= torch.where(closing, (k - opened).clamp(min=0), 0)
            ring_order = ring_order.clone()
            ring_order[rows, col] = torch.where(is_ring & ~closing, s.pending,
                                                torch.where(closing, 0, ring_order[rows, col]))
        pending = torch.where(cls == BOND, self.order_of.to(device)[tokens],
                              torch.where(is_atom | (cls == RING), 0, s.pending))
        return ValenceState(self.grammar.advance(g, tokens), units, neighbours, max_order,
                            pending, ring_order)


def _is_aromatic(token: str) -> bool:
    """Whether an atom token is aromatic (``c``, ``[nH]``, ``[se]``...)."""
    symbol = token[1:].lstrip("0123456789") if token.startswith("[") else token
    return symbol[:1].islower()

"""Exact marginals of an mbi graphical model, in NumPy, on its junction tree.

AIM scores every candidate marginal against the current model each round, and MST every pair
once. mbi answers an out-of-model marginal by variable elimination compiled by JAX for each
query, which took about 0.7 s per pair here (compilation); this module computes the same numbers
in NumPy: sum-product message passing on the junction tree of the model's cliques gives
calibrated clique beliefs, and a pair (a, b) in different cliques is carried along the tree path
between them with `a` kept as an extra index (P(a, C') = sum P(a, S) P(C' | S) over separators).
Post-processing of the private measurements; exact up to floating point (the tests compare it
with mbi's own `project`).
"""

import string
from typing import Dict, Sequence, Tuple

import numpy as np
from scipy import special

_LETTERS = string.ascii_letters


class ModelMarginals:
  """Marginals of an mbi `MarkovRandomField` (potentials in log space), scaled to its total."""

  def __init__(self, model, mbi):
    import networkx  # pylint: disable=g-import-not-at-top  # mbi's dependency, optional too

    nx = self._nx = networkx
    self.total = float(model.total)
    self.sizes = dict(model.domain.config)
    self._letter = {a: _LETTERS[i] for i, a in enumerate(self.sizes)}
    if len(self.sizes) > len(_LETTERS) - 1:
      raise ValueError(f"at most {len(_LETTERS) - 1} attributes, got {len(self.sizes)}")
    potentials = {}
    for clique in model.potentials.cliques:
      factor = model.potentials[clique]
      potentials[tuple(factor.domain.attributes)] = np.asarray(factor.values, np.float64)
    cliques = [tuple(c) for c in potentials]
    jtree, _ = mbi.junction_tree.make_junction_tree(model.domain, cliques)
    self.tree = nx.Graph(jtree)
    self.max_cliques = [tuple(c) for c in self.tree.nodes]
    # Attributes in no clique (never measured) are uniform and independent.
    covered = set().union(*map(set, self.max_cliques)) if self.max_cliques else set()
    for a in self.sizes:
      if a not in covered:
        self.tree.add_node((a,))
        self.max_cliques.append((a,))
    log_tables = {c: np.zeros([self.sizes[a] for a in c]) for c in self.max_cliques}
    for clique, table in potentials.items():
      home = next(c for c in self.max_cliques if set(clique) <= set(c))
      log_tables[home] = log_tables[home] + self._expand(table, clique, home)
    self.beliefs = self._calibrate(log_tables)
    self._component = {}
    for i, comp in enumerate(nx.connected_components(self.tree)):
      for c in comp:
        self._component[c] = i

  def _sub(self, attrs) -> str:
    return "".join(self._letter[a] for a in attrs)

  def _expand(self, table: np.ndarray, attrs: Sequence[str], target: Sequence[str]):
    """Broadcasts `table` over `attrs` to the axes of `target` (a superset)."""
    perm = [attrs.index(a) for a in target if a in attrs]
    t = np.transpose(table, perm)
    shape = [self.sizes[a] if a in attrs else 1 for a in target]
    return t.reshape(shape)

  def _calibrate(self, log_tables: Dict[Tuple[str, ...], np.ndarray]):
    """Sum-product (log space) on each tree of the forest; beliefs sum to the total."""
    messages = {}
    beliefs = {}
    nx = self._nx
    for comp in nx.connected_components(self.tree):
      root = sorted(comp)[0]
      order = list(nx.dfs_postorder_nodes(self.tree.subgraph(comp), root))
      parent = dict(nx.dfs_predecessors(self.tree.subgraph(comp), root))

      def message(src, dst):
        sep = [a for a in src if a in dst]
        t = log_tables[src].copy()
        for nb in self.tree.neighbors(src):
          if nb != dst and (nb, src) in messages:
            t = t + self._expand(messages[(nb, src)], [a for a in nb if a in src], src)
        drop = tuple(i for i, a in enumerate(src) if a not in sep)
        out = special.logsumexp(t, axis=drop) if drop else t
        return np.asarray(out)

      for node in order:  # leaves to root
        if node in parent:
          messages[(node, parent[node])] = message(node, parent[node])
      for node in reversed(order):  # root to leaves
        if node in parent:
          messages[(parent[node], node)] = message(parent[node], node)
      for node in comp:
        t = log_tables[node].copy()
        for nb in self.tree.neighbors(node):
          t = t + self._expand(messages[(nb, node)], [a for a in nb if a in node], node)
        t = t - special.logsumexp(t)
        beliefs[node] = np.exp(t)  # probabilities
    return beliefs

  def _clique_of(self, a: str) -> Tuple[str, ...]:
    return min((c for c in self.max_cliques if a in c), key=len)

  def marginal(self, attrs: Sequence[str]) -> np.ndarray:
    """The model's marginal on `attrs` (one or two attributes), flattened in C order."""
    attrs = tuple(attrs)
    for c in self.max_cliques:
      if set(attrs) <= set(c):
        p = np.einsum(f"{self._sub(c)}->{self._sub(attrs)}", self.beliefs[c])
        return self.total * p.reshape(-1)
    if len(attrs) != 2:
      raise ValueError(f"out-of-clique marginals of one or two attributes only, got {attrs}")
    a, b = attrs
    ca, cb = self._clique_of(a), self._clique_of(b)
    if self._component[ca] != self._component[cb]:
      pa = self.marginal((a,)) / self.total
      pb = self.marginal((b,)) / self.total
      return self.total * np.outer(pa, pb).reshape(-1)
    path = self._nx.shortest_path(self.tree, ca, cb)
    extra = _LETTERS[-1]  # the index that carries a (no attribute has this letter)
    # T[alpha, c] = P(c) [c_a = alpha] on the first clique.
    diag = np.eye(self.sizes[a])
    cur = path[0]
    t = np.einsum(
      f"{self._sub(cur)},{extra}{self._letter[a]}->{extra}{self._sub(cur)}", self.beliefs[cur], diag
    )
    for nxt in path[1:]:
      sep = tuple(v for v in cur if v in nxt)
      t_sep = np.einsum(f"{extra}{self._sub(cur)}->{extra}{self._sub(sep)}", t)
      p_next = self.beliefs[nxt]
      p_sep = np.einsum(f"{self._sub(nxt)}->{self._sub(sep)}", p_next)
      cond = np.divide(
        p_next,
        self._expand(p_sep, sep, nxt),
        out=np.zeros_like(p_next),
        where=self._expand(p_sep, sep, nxt) > 0,
      )
      t = np.einsum(
        f"{extra}{self._sub(sep)},{self._sub(nxt)}->{extra}{self._sub(nxt)}", t_sep, cond
      )
      cur = nxt
    pab = np.einsum(f"{extra}{self._sub(cur)}->{extra}{self._letter[b]}", t)
    return self.total * pab.reshape(-1)

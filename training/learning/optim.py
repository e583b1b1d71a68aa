"""Lazy Adam: Adam (with L2 weight decay, as `torch.optim.Adam`) that updates only the
embedding rows a batch touched.

Dense Adam rewrites every row of every table each step (two 50,000 x 100 tables: ten
million parameters, four buffers) although a batch of 4096 pairs touches at most 8,192
rows per table; the per-step cost then scales with the batch, not the catalog. Rows a
batch does not touch keep their moments and are not decayed that step (TensorFlow's
LazyAdam); with weight decay 1e-5 the difference is negligible.
"""
from __future__ import annotations


import torch


class LazyAdam(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                st["step"] += 1
                bc1 = 1 - b1 ** st["step"]
                bc2 = 1 - b2 ** st["step"]
                step_size = lr / bc1
                m, v = st["m"], st["v"]
                if p.grad.is_sparse:
                    g = p.grad.coalesce()              # unique rows, summed duplicates
                    rows, val = g.indices()[0], g.values()
                    if wd:
                        val = val.add(p.index_select(0, rows), alpha=wd)
                    mi = m.index_select(0, rows).mul_(b1).add_(val, alpha=1 - b1)
                    vi = v.index_select(0, rows).mul_(b2).addcmul_(val, val, value=1 - b2)
                    m.index_copy_(0, rows, mi)
                    v.index_copy_(0, rows, vi)
                    p.index_add_(0, rows, mi.div_(vi.div_(bc2).sqrt_().add_(eps)), alpha=-step_size)
                else:
                    g = p.grad
                    if wd:
                        g = g.add(p, alpha=wd)
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    p.addcdiv_(m, v.div(bc2).sqrt_().add_(eps), value=-step_size)
        return None

"""The contextual embedding model: score(context, target) = <context vector, target vector>.

The course's model is two free embedding tables. Options beyond it, each chosen by a
parameter so the baseline stays available run against run:
- `features`: a track's vector also sums its artist's and genre's vectors (from the public
  catalog), so tracks never seen in the logs inherit what their artist/genre taught;
- `tied`: one table for both sides (the listener's taste is symmetric in the tracks);
- `bias`: a per-target bias (tracks everybody likes);
- `sigmoid`: predictions are sigmoid(score), the listened fraction, for the BCE objective.
`forward(track ids)` returns every target's score for each context, which is what the
logged MLflow model serves and what the i2i export ranks.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class EmbeddingModel(nn.Module):
    def __init__(self, n_tracks: int, dim: int, *, artist: np.ndarray | None = None,
                 genre: np.ndarray | None = None, n_artists: int = 0, n_genres: int = 0,
                 tied: bool = False, bias: bool = False, sigmoid: bool = False,
                 init_std: float = 0.1) -> None:
        super().__init__()
        self.n_tracks, self.dim = n_tracks, dim
        self.tied, self.use_bias, self.sigmoid = tied, bias, sigmoid
        self.features = artist is not None and genre is not None
        self.context = nn.Embedding(n_tracks, dim)
        self.target = self.context if tied else nn.Embedding(n_tracks, dim)
        tables = [self.context] if tied else [self.context, self.target]
        if self.features:
            self.register_buffer("artist_of", torch.as_tensor(artist, dtype=torch.long))
            self.register_buffer("genre_of", torch.as_tensor(genre, dtype=torch.long))
            self.ctx_artist = nn.Embedding(n_artists, dim)
            self.ctx_genre = nn.Embedding(n_genres, dim)
            tables += [self.ctx_artist, self.ctx_genre]
            if tied:
                self.tgt_artist, self.tgt_genre = self.ctx_artist, self.ctx_genre
            else:
                self.tgt_artist = nn.Embedding(n_artists, dim)
                self.tgt_genre = nn.Embedding(n_genres, dim)
                tables += [self.tgt_artist, self.tgt_genre]
        self.target_bias = nn.Embedding(n_tracks, 1) if bias else None
        self.global_bias = nn.Parameter(torch.zeros(())) if bias else None
        for t in tables:
            nn.init.normal_(t.weight, std=init_std)
        if bias:
            nn.init.zeros_(self.target_bias.weight)

    def context_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        v = self.context(ids)
        if self.features:
            v = v + self.ctx_artist(self.artist_of[ids]) + self.ctx_genre(self.genre_of[ids])
        return v

    def target_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        v = self.target(ids)
        if self.features:
            v = v + self.tgt_artist(self.artist_of[ids]) + self.tgt_genre(self.genre_of[ids])
        return v

    def biases(self, ids: torch.Tensor) -> torch.Tensor:
        if self.target_bias is None:
            return torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
        return self.target_bias(ids).squeeze(-1) + self.global_bias

    def pair_scores(self, ctx: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Raw score of each (context, target) pair: the logit when `sigmoid`."""
        return (self.context_vectors(ctx) * self.target_vectors(tgt)).sum(-1) + self.biases(tgt)

    def predict_time(self, ctx: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        s = self.pair_scores(ctx, tgt)
        return torch.sigmoid(s) if self.sigmoid else s

    @torch.no_grad()
    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(context [N, d], target [N, d], target bias [N]) with features folded in."""
        ids = torch.arange(self.n_tracks)
        return (self.context_vectors(ids).float().numpy().copy(),
                self.target_vectors(ids).float().numpy().copy(),
                self.biases(ids).float().numpy().copy())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Scores of every target track for each context track id: [B, N]."""
        ids = ids.long().reshape(-1)
        all_ids = torch.arange(self.n_tracks, device=ids.device)
        return self.context_vectors(ids) @ self.target_vectors(all_ids).T + self.biases(all_ids)

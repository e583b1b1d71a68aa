"""The contextual embedding model: score(context, target) = <context vector, target vector>.

The course's model is two free embedding tables. Options beyond it, each chosen by a
parameter so the baseline stays available run against run:
- `features`: a track's vector also sums its artist's and genre's vectors (from the public
  catalog), so tracks never seen in the logs inherit what their artist/genre taught;
- `tied`: one table for both sides (the listener's taste is symmetric in the tracks);
- `bias`: a per-target bias (tracks everybody likes);
- `sigmoid`: predictions are sigmoid(score), the listened fraction, for the BCE objective;
- `match`: two learned weights for "same artist" and "same genre" as the context, a
  catalog prior the embeddings then only have to correct (with few logs, the prior
  alone already ranks a track's artist and genre first).
`forward(track ids)` returns every target's score for each context, which is what the
logged MLflow model serves and what the i2i export ranks.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn


class EmbeddingModel(nn.Module):
    def __init__(self, n_tracks: int, dim: int, *, artist: np.ndarray | None = None,
                 genre: np.ndarray | None = None, n_artists: int = 0, n_genres: int = 0,
                 tied: bool = False, bias: bool = False, sigmoid: bool = False,
                 match: bool = False, discount: bool = False, ids: bool = True,
                 sparse: bool = False, match_init: tuple[float, float] = (0.0, 0.0),
                 feature_tables: bool = True, init_std: float = 0.1) -> None:
        super().__init__()
        # what rebuilds this architecture from a JSON file (`save_model`/`load_model`); the
        # weights, including the catalog's artist/genre codes, are in the state dict
        self.spec = {"n_tracks": n_tracks, "dim": dim, "features": artist is not None and genre is not None,
                     "n_artists": n_artists, "n_genres": n_genres, "tied": tied, "bias": bias,
                     "sigmoid": sigmoid, "match": match, "discount": discount, "ids": ids,
                     "feature_tables": feature_tables}
        self.n_tracks, self.dim = n_tracks, dim
        self.tied, self.use_bias, self.sigmoid = tied, bias, sigmoid
        self.features = artist is not None and genre is not None
        # sparse: gradients name only the rows a batch touched (for training.learning.optim.LazyAdam)
        self.sparse = sparse
        self.context = nn.Embedding(n_tracks, dim, sparse=sparse)
        self.target = self.context if tied else nn.Embedding(n_tracks, dim, sparse=sparse)
        tables = [self.context] if tied else [self.context, self.target]
        # feature_tables=False: the catalog only feeds the match prior, no artist/genre vectors
        self.feature_tables = self.features and feature_tables
        if self.features:
            self.register_buffer("artist_of", torch.as_tensor(artist, dtype=torch.long))
            self.register_buffer("genre_of", torch.as_tensor(genre, dtype=torch.long))
        if self.feature_tables:
            self.ctx_artist = nn.Embedding(n_artists, dim, sparse=sparse)
            self.ctx_genre = nn.Embedding(n_genres, dim)
            tables += [self.ctx_artist, self.ctx_genre]
            if tied:
                self.tgt_artist, self.tgt_genre = self.ctx_artist, self.ctx_genre
            else:
                self.tgt_artist = nn.Embedding(n_artists, dim, sparse=sparse)
                self.tgt_genre = nn.Embedding(n_genres, dim)
                tables += [self.tgt_artist, self.tgt_genre]
        self.match = match
        if match and not self.features:
            raise ValueError("match needs the catalog's artist and genre (features)")
        self.match_weights = nn.Parameter(torch.tensor(list(match_init), dtype=torch.float32)) if match else None
        # time = taste x d^(plays of the artist so far): d learned, in (0, 1]
        self.discount_logit = nn.Parameter(torch.tensor(2.0)) if discount else None
        # the logit's intercept (mean listened fraction): a constant, so it ranks nothing
        self.intercept = nn.Parameter(torch.zeros(())) if sigmoid else None
        self.target_bias = nn.Embedding(n_tracks, 1, sparse=sparse) if bias else None
        self.global_bias = nn.Parameter(torch.zeros(())) if bias else None
        for t in tables:
            nn.init.normal_(t.weight, std=init_std)
        # ids=False: a track is only its artist and genre (with few logs per track, a free
        # vector per track mostly learns noise); the id tables stay at zero, frozen.
        self.ids = ids
        if not ids:
            if not self.feature_tables:
                raise ValueError("ids=False needs feature tables (a track would have no vector)")
            for t in {id(self.context): self.context, id(self.target): self.target}.values():
                nn.init.zeros_(t.weight)
                t.weight.requires_grad_(False)
        if bias:
            nn.init.zeros_(self.target_bias.weight)

    def context_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        v = self.context(ids)
        if self.feature_tables:
            v = v + self.ctx_artist(self.artist_of[ids]) + self.ctx_genre(self.genre_of[ids])
        return v

    def target_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        v = self.target(ids)
        if self.feature_tables:
            v = v + self.tgt_artist(self.artist_of[ids]) + self.tgt_genre(self.genre_of[ids])
        return v

    def biases(self, ids: torch.Tensor) -> torch.Tensor:
        b = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
        if self.intercept is not None:
            b = b + self.intercept
        if self.target_bias is not None:
            b = b + self.target_bias(ids).squeeze(-1) + self.global_bias
        return b

    def pair_scores(self, ctx: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Raw score of each (context, target) pair: the logit when `sigmoid`."""
        s = (self.context_vectors(ctx) * self.target_vectors(tgt)).sum(-1) + self.biases(tgt)
        if self.match:
            w = self.match_weights
            s = s + w[0] * (self.artist_of[ctx] == self.artist_of[tgt]) \
                  + w[1] * (self.genre_of[ctx] == self.genre_of[tgt])
        return s

    def log_discount(self, artist_plays: torch.Tensor | None) -> torch.Tensor | float:
        """log of the learned replay discount for the given prior plays (0 if not modelled)."""
        if self.discount_logit is None or artist_plays is None:
            return 0.0
        return torch.nn.functional.logsigmoid(self.discount_logit) * artist_plays

    def predict_time(self, ctx: torch.Tensor, tgt: torch.Tensor,
                     artist_plays: torch.Tensor | None = None) -> torch.Tensor:
        s = self.pair_scores(ctx, tgt)
        ld = self.log_discount(artist_plays)
        if self.sigmoid:
            return torch.exp(torch.nn.functional.logsigmoid(s) + ld)
        return s * torch.exp(torch.as_tensor(ld))

    @torch.no_grad()
    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(context [N, d], target [N, d], target bias [N]) with features folded in."""
        ids = torch.arange(self.n_tracks)
        return (self.context_vectors(ids).float().numpy().copy(),
                self.target_vectors(ids).float().numpy().copy(),
                self.biases(ids).float().numpy().copy())

    @torch.no_grad()
    def scorer(self):
        """A function ids [B] -> scores of every target [B, N], the target side computed once.

        The i2i export and the ranking metrics rank with it, so they rank by exactly the
        score `forward` (the logged model) gives. The match terms avoid a dense [B, N]
        comparison: "same genre" rides along the matrix product as one-hot columns (a
        catalog has few genres), "same artist" is added only at each artist's few tracks.
        """
        all_ids = torch.arange(self.n_tracks)
        tgt = self.target_vectors(all_ids)
        bias = self.biases(all_ids)
        if not self.match:
            tgt_t = tgt.T.contiguous()
            return lambda ids: torch.addmm(bias, self.context_vectors(ids.long().reshape(-1)), tgt_t)
        w_artist, w_genre = (float(x) for x in self.match_weights)
        n_genres = int(self.genre_of.max()) + 1
        onehot = torch.nn.functional.one_hot(self.genre_of, n_genres).float()
        tgt_t = torch.cat([tgt, onehot], 1).T.contiguous()
        by_artist = torch.argsort(self.artist_of, stable=True)
        counts = torch.bincount(self.artist_of)
        starts = torch.cumsum(counts, 0) - counts

        def score(ids: torch.Tensor) -> torch.Tensor:
            ids = ids.long().reshape(-1)
            ctx = torch.cat([self.context_vectors(ids), w_genre * onehot[ids]], 1)
            s = torch.addmm(bias, ctx, tgt_t)
            a = self.artist_of[ids]
            n = counts[a]
            rows = torch.repeat_interleave(torch.arange(len(ids)), n)
            first = torch.repeat_interleave(starts[a], n)
            within = torch.arange(len(rows)) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
            s[rows, by_artist[first + within]] += w_artist
            return s
        return score

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Scores of every target track for each context track id: [B, N]."""
        ids = ids.long().reshape(-1)
        all_ids = torch.arange(self.n_tracks, device=ids.device)
        s = self.context_vectors(ids) @ self.target_vectors(all_ids).T + self.biases(all_ids)
        if self.match:
            s = s + self.match_weights[0] * (self.artist_of[ids, None] == self.artist_of[None, :]) \
                  + self.match_weights[1] * (self.genre_of[ids, None] == self.genre_of[None, :])
        return s


# --- the model on disk: plain arrays and a JSON spec, never a pickle ------------------------
# A pickled model runs whatever code its file names when it is opened, so anyone who can
# register a version could run code in every process that loads one. This format holds
# numbers only: `spec.json` (the architecture) and `weights.npz` (each state-dict tensor as
# an array), read with `allow_pickle=False`.

FORMAT = "botify-embeddings/npz-v1"
SPEC_FILE, WEIGHTS_FILE = "spec.json", "weights.npz"


class ModelFormatError(ValueError):
    """A model directory that is not (or not only) the safe format: refused, never unpickled."""


def save_model(model: EmbeddingModel, path: str | Path) -> Path:
    """Write `spec.json` and `weights.npz` into `path` (created)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    np.savez(path / WEIGHTS_FILE, **state)
    (path / SPEC_FILE).write_text(json.dumps({"format": FORMAT, **model.spec}, indent=1))
    return path


def load_model(path: str | Path) -> EmbeddingModel:
    """The model saved by `save_model`, in eval mode; ModelFormatError for anything else."""
    path = Path(path)
    spec_file, weights_file = path / SPEC_FILE, path / WEIGHTS_FILE
    if not spec_file.is_file() or not weights_file.is_file():
        found = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        raise ModelFormatError(f"{path}: not a Botify model ({SPEC_FILE} + {WEIGHTS_FILE} expected, found {found}); "
                               f"models in other formats (e.g. pickled .pth) are refused: retrain it with "
                               f"`mlflow run . -e train`")
    try:
        spec = json.loads(spec_file.read_text())
        if spec.pop("format", None) != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        npz = np.load(weights_file, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"{WEIGHTS_FILE} is not an .npz archive")
        with npz:
            state = {k: torch.from_numpy(npz[k].copy()) for k in npz.files}
    except (ValueError, OSError, KeyError) as e:   # an object array (a pickle) raises ValueError here
        raise ModelFormatError(f"{path}: unreadable model ({e}); only plain arrays are loaded") from None
    features = spec.pop("features")
    n = spec.pop("n_tracks")
    kw = {}
    if features:
        kw = {"artist": np.zeros(n, dtype=np.int64), "genre": np.zeros(n, dtype=np.int64)}  # codes come from the state
    model = EmbeddingModel(n, **spec, **kw)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelFormatError(f"{path}: weights do not match spec.json ({e})") from None
    return model.eval()

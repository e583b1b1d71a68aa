"""The public file formats that the service (service/) and training (training/) exchange.

One definition of each format, used by whoever writes it and whoever reads it, so the two
sides cannot drift apart (issue 9; they once assigned artists different codes):

- `formats.catalog`: a world's public catalog (`public/tracks.json`, `public/world.json`)
  and the integer artist/genre codes both sides derive from it;
- `formats.events`: the service's event log (one JSON object per line, one file per worker,
  rotated by size);
- `formats.lists`: i2i and per-user recommendation lists (JSON lines, or an int32 table).
- `formats.learned`: a learned version (one learner's lists, its policy parameters and
  files: a version of the registered model `botify-i2i`).

Contracts: docs/architecture.md. This package imports nothing from sim/, service/ or
training/ and knows nothing of a world's hidden/ folder (tests/test_boundaries.py), and it
stays light (json, numpy): every service worker imports it at start-up.
"""


class FormatError(ValueError):
    """A file breaks its format. The message names the problem (and the line, where there is
    one) but not the file: the caller names the file and the command that makes it again."""

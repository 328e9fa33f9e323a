"""Writes the embedded sample: synthetic ratings in the ML-1M file format.

MovieLens may not be redistributed, so the repository ships this generator and
the small sample it wrote (`data/sample/`). The data has structure a
next-item model can learn and a popularity ranking cannot:

* movies belong to series (sequels); a user who just watched part n often
  watches part n+1 next (sequential habit);
* each user has a few favourite genres and picks movies of those genres,
  weighted by a long-tailed popularity (taste);
* timestamps grow per user, with some equal timestamps (as in ML-1M, where
  several ratings share a second), and ratings.dat lists each user's ratings
  in a shuffled order, so order must come from the timestamps.

Titles hold latin-1 characters (é, ü, ...) as the real movies.dat does.
The output is deterministic for a given seed: `python data/make_sample.py`
rewrites the committed sample byte for byte.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
          "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
AGES = (1, 18, 25, 35, 45, 50, 56)
WORDS = ("Night", "River", "Crème", "Garden", "Über", "Storm", "Señor",
         "Winter", "Café", "Shadow", "Noël", "Empire", "Fjörd", "Mirror",
         "Déjà", "Harbor", "Queen", "Orchid", "Eclipse", "Signal")
ROMAN = ("", " II", " III", " IV", " V", " VI")


def generate(seed: int = 7, num_users: int = 600, num_series: int = 260,
             mean_ratings: int = 90):
  """Returns (movies, users, ratings) rows in ML-1M field order."""
  rng = np.random.default_rng(seed)

  # Movies: series of 1-6 parts sharing one to three genres; popularity falls
  # off along the series and follows a power law across series.
  movies, series_of, part_of, genre_sets = [], [], [], []
  next_in_series = {}
  movie_id = 1
  for s in range(num_series):
    parts = int(rng.choice([1, 2, 3, 4, 5, 6], p=[.25, .2, .2, .15, .1, .1]))
    genres = tuple(sorted(rng.choice(len(GENRES), size=int(rng.integers(1, 4)),
                                     replace=False)))
    year = int(rng.integers(1935, 2000))
    name = f"{WORDS[s % len(WORDS)]} {WORDS[(s * 7 + 3) % len(WORDS)]} {s}"
    for p in range(parts):
      title = f"{name}{ROMAN[p]} ({year + 2 * p})"
      movies.append((movie_id, title, "|".join(GENRES[g] for g in genres)))
      series_of.append(s)
      part_of.append(p)
      genre_sets.append(genres)
      if p > 0:
        next_in_series[movie_id - 1] = movie_id
      movie_id += 1
  num_movies = len(movies)
  series_pop = rng.pareto(1.2, size=num_series) + 0.05
  popularity = series_pop[series_of] * 0.8 ** np.array(part_of)
  genre_matrix = np.zeros((num_movies, len(GENRES)))
  for m, genres in enumerate(genre_sets):
    genre_matrix[m, list(genres)] = 1.0 / len(genres)

  users, ratings = [], []
  for u in range(1, num_users + 1):
    users.append((u, "MF"[int(rng.integers(2))], int(rng.choice(AGES)),
                  int(rng.integers(21)), f"{int(rng.integers(10000, 99999))}"))
    taste = rng.dirichlet(np.full(len(GENRES), 0.15))
    affinity = genre_matrix @ taste
    weights = popularity * (affinity + 0.002) ** 1.5
    length = int(np.clip(rng.lognormal(np.log(mean_ratings), 0.6), 20, 400))
    length = min(length, num_movies // 2)
    seen = np.zeros(num_movies, bool)
    sequence, last = [], None
    while len(sequence) < length:
      follow = next_in_series.get(last + 1) if last is not None else None
      if follow is not None and not seen[follow - 1] and rng.random() < 0.75:
        m = follow - 1
      else:
        p = np.where(seen, 0.0, weights)
        m = int(rng.choice(num_movies, p=p / p.sum()))
      seen[m] = True
      sequence.append(m)
      last = m
    t = int(rng.integers(956_700_000, 1_040_000_000))
    rows = []
    for m in sequence:
      score = 1 + 4 * affinity[m] / affinity.max() + rng.normal(0, 0.8)
      rows.append((u, m + 1, int(np.clip(np.rint(score), 1, 5)), t))
      # About one rating in six shares the previous one's second.
      t += 0 if rng.random() < 0.17 else int(rng.integers(30, 200_000))
    order = rng.permutation(len(rows))
    ratings.extend(rows[i] for i in order)
  return movies, users, ratings


def write(out_dir: str, seed: int = 7, **shape) -> None:
  """Writes the three files; `shape` passes generate's sizes (the bench's
  large catalog)."""
  movies, users, ratings = generate(seed, **shape)
  os.makedirs(out_dir, exist_ok=True)

  def dump(name, rows):
    with open(os.path.join(out_dir, name), "w", encoding="latin-1",
              newline="\n") as f:
      f.writelines("::".join(str(v) for v in row) + "\n" for row in rows)

  dump("movies.dat", movies)
  dump("users.dat", users)
  dump("ratings.dat", ratings)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out-dir", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "sample"))
  parser.add_argument("--seed", type=int, default=7)
  args = parser.parse_args()
  write(args.out_dir, args.seed)
  print(f"wrote {args.out_dir}")


if __name__ == "__main__":
  main()

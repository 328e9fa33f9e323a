"""Raw interaction examples built the way MovieLensExampleGen writes them."""
from typing import Optional

import tensorflow as tf

from components.example_gen.executor import serialized_example
from components.example_gen.movielens.executor import (movie_features,
                                                       rating_features,
                                                       user_features)
from components.lib.movielens_formats import Movie, Rating, User


def to_example(rating: Rating, offset: int, movie: Movie,
               user: Optional[User]) -> tf.train.Example:
  """The raw example of one rating (what ingestion writes), as a proto."""
  parts = [rating_features(rating, offset), movie_features(movie)]
  if user is not None:
    parts.append(user_features(user))
  return tf.train.Example.FromString(serialized_example(*parts))

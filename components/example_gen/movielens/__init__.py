"""MovieLensExampleGen: raw GroupLens files -> one tf.Example per rating."""

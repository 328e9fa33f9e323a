"""AliCCPExampleGen: raw Ali-CCP files -> one tf.Example per impression."""

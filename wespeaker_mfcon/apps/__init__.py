"""What users do with a trained model: embed and compare (embedder.py), the wespeaker-mfcon
command (cli.py)."""

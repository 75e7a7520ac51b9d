"""What users do with a trained model: embed and compare (embedder.py); enroll and identify
speakers (identification.py over the speaker database speaker_db.py and its search.py); the
WeSpeaker-compatible API (speaker.py); the wespeaker-mfcon command (cli.py, db_commands.py)."""

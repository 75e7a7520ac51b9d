"""wespeaker_mfcon: MFA-Conformer speaker verification with the MFCon loss."""

__version__ = "0.1.0"
